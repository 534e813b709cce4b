"""Everything that touches the outside world: store, clock, password hashing, hardware, hosts."""
