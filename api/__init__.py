"""Till Ledger's HTTP service (FastAPI): routers per audience, auth, problem+json errors."""
