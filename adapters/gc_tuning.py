"""Garbage-collector settings for a long-running server process.

Measured under the append benchmark with CPython's defaults: ~3,600 young and 30 full collections in
30 s, 3.4 s in all, with full collections of up to 87 ms -- most of it re-scanning the hundreds of
thousands of objects FastAPI, pydantic and the store create at import and never free. That pause was
the p99 append latency. Freezing the start-up objects takes them out of every later collection, and
a higher first threshold lets the short-lived objects of a request die by reference counting before
the collector looks at them. Cyclic garbage is still collected, just in fewer, smaller passes.
"""

from __future__ import annotations

import gc

FIRST_GENERATION_THRESHOLD = 10_000  # CPython's default is 700


def tune_for_server() -> None:
    """Call once the app is built, before serving."""
    gc.collect()
    gc.freeze()
    _, second, third = gc.get_threshold()
    gc.set_threshold(FIRST_GENERATION_THRESHOLD, second, third)
