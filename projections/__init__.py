"""Read models built from the ledger events (receipts, reconciliation, dispute evidence)."""
