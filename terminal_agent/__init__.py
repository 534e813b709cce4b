"""The counter process: drives the card reader and printer and appends events (see issue 5)."""
