"""One router per audience: terminal, admin, health (accountant and dispute routers follow)."""
