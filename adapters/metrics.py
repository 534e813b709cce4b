"""The service's Prometheus metrics: the metric objects, and the text that ``GET /metrics`` serves.

prometheus_client wants a metric registered once per process, so the objects below are module
globals, the one thing built at import time: every app a test builds shares them, and nothing
registers twice. What belongs to one app (its projections' positions) is read at scrape time and
handed to ``exposition`` as a collector made for that scrape.

With several worker processes (``till serve --workers N``) each counts on its own. When
``PROMETHEUS_MULTIPROC_DIR`` is set before prometheus_client is imported, every process writes its
values to files there and ``exposition`` sums them, whichever worker answers the scrape
(prometheus_client's multiprocess mode). There are no multiprocess gauges here, so a worker that
exits leaves nothing stale behind: its counters keep counting toward the totals, as they should.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import REGISTRY, Collector

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"

EVENTS_APPENDED = Counter("till_events_appended", "Events saved to the event store (rate() is appends per second).")
BATCH_SIZE = Histogram("till_group_commit_batch_size", "Commands saved together in one store transaction.",
                       buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024))
ACQUIRER_SECONDS = Histogram("till_acquirer_request_duration_seconds",
                             "Time from dialling the acquirer host to its reply (or giving up).", ["operation"],
                             buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60))
ACQUIRER_REQUESTS = Counter("till_acquirer_requests", "Exchanges with the acquirer host by outcome: approved, "
                            "declined, timeout, unreachable, error.", ["operation", "outcome"])
ERRORS = Counter("till_errors", "Error responses by their problem+json code.", ["code"])
HTTP_REQUESTS = Counter("till_http_requests", "HTTP requests by method, route template and status.",
                        ["method", "route", "status"])
HTTP_SECONDS = Histogram("till_http_request_duration_seconds", "HTTP request duration by method and route template.",
                         ["method", "route"])


def record_batch(commands: int, events: int) -> None:
    """One save() for ``commands`` commands wrote ``events`` events (none: only replayed appends)."""
    if events:
        BATCH_SIZE.observe(commands)
        EVENTS_APPENDED.inc(events)


def record_acquirer_exchange(operation: str, outcome: str, seconds: float) -> None:
    ACQUIRER_SECONDS.labels(operation).observe(seconds)
    ACQUIRER_REQUESTS.labels(operation, outcome).inc()


def record_error(code: str) -> None:
    ERRORS.labels(code).inc()


def record_request(method: str, route: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_SECONDS.labels(method, route).observe(seconds)


class ProjectionCollector:
    """The store's head and each projection's position and lag, as read for one scrape.

    ``rows`` are ``ReadModels.status()`` rows (name, position, head, lag), or None when they could not
    be read; ``till_ready`` then says 0 so that an alert needs no absent() guard.
    """

    def __init__(self, head: int | None, rows: Sequence[Mapping[str, Any]] | None) -> None:
        self.head = head
        self.rows = rows

    def collect(self) -> Iterator[Metric]:
        ready = GaugeMetricFamily("till_ready", "1 when the event store and the projections answered this scrape.")
        ready.add_metric([], 1 if self.head is not None and self.rows is not None else 0)
        yield ready
        if self.head is not None:
            yield GaugeMetricFamily("till_event_store_head", "The last notification id in the event store.",
                                    value=self.head)
        if self.rows is None:
            return
        position = GaugeMetricFamily("till_projection_position", "The last notification id a projection applied.",
                                     labels=["projection"])
        lag = GaugeMetricFamily("till_projection_lag_events", "Events in the store a projection has not applied yet.",
                                labels=["projection"])
        for row in self.rows:
            position.add_metric([str(row["name"])], row["position"])
            lag.add_metric([str(row["name"])], row["lag"])
        yield position
        yield lag


class _Scrape:
    """Several collectors as one, for a single exposition."""

    def __init__(self, sources: Iterable[Collector]) -> None:
        self.sources = list(sources)

    def collect(self) -> Iterator[Metric]:
        for source in self.sources:
            yield from source.collect()


def exposition(accept: str | None, *per_scrape: Collector) -> tuple[bytes, str]:
    """The body and content type for a scrape (format chosen by the scraper's Accept header):
    this process's metrics, or every process's when ``PROMETHEUS_MULTIPROC_DIR`` is set, plus
    ``per_scrape`` collectors."""
    directory = os.environ.get(MULTIPROC_DIR_ENV)
    # In multiprocess mode the default registry's process and GC metrics describe only the worker
    # that happens to answer, so only the summed files are served.
    base: Collector = MultiProcessCollector(None, path=directory) if directory else REGISTRY
    encode: Callable[[Collector], bytes]
    encode, content_type = choose_encoder(accept or "")
    return encode(_Scrape([base, *per_scrape])), content_type
