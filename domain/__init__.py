"""Till Ledger's pure domain model: aggregates, events, value objects, rules and errors.

Nothing here performs I/O; the application service (`domain.ledger.Ledger`) is handed its
store by the composition root.
"""
