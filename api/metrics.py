"""Prometheus metrics: requests by route and status, latency, and the index being served.

Routes are labelled by their template (``/v1/articles/{ref}/related``), never by
the raw path, so article references do not explode the label set; requests that
match no route share the label ``<unmatched>``. The middleware is plain ASGI
(no ``BaseHTTPMiddleware``), which keeps its cost to a few microseconds.

Each app gets its own registry (tests create many apps). With several worker
processes, ``recommender serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` and
``/metrics`` then aggregates all workers.
"""

from __future__ import annotations

import os
import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: latency buckets around the goals (10 ms by article, 50 ms by text)
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class Metrics:
    """The service's metrics, registered in a registry of their own."""

    def __init__(self) -> None:
        self.multiprocess = multiprocess_dir() is not None
        # in multiprocess mode values live in files; the registry only reads them back
        own = None if self.multiprocess else CollectorRegistry()
        self.registry = CollectorRegistry() if self.multiprocess else own
        if self.multiprocess:
            from prometheus_client import multiprocess

            multiprocess.MultiProcessCollector(self.registry)
        self.requests = Counter(
            "recommender_http_requests", "HTTP requests answered",
            ["route", "method", "status"], registry=own)
        self.latency = Histogram(
            "recommender_http_request_duration_seconds", "Time to answer an HTTP request",
            ["route", "method", "status"], buckets=BUCKETS, registry=own)
        self.index_articles = Gauge(
            "recommender_index_articles", "Articles in the index being served",
            registry=own, multiprocess_mode="livemostrecent")
        self.index_generation = Gauge(
            "recommender_index_generation", "How many times this process has loaded an index",
            registry=own, multiprocess_mode="liveall")
        self.index_loaded_at = Gauge(
            "recommender_index_loaded_timestamp_seconds", "When the served index was loaded",
            registry=own, multiprocess_mode="livemostrecent")
        self.reloads = Counter(
            "recommender_index_reloads", "Index loads and reloads by outcome", ["outcome"],
            registry=own)

    def index_loaded(self, articles: int, generation: int) -> None:
        self.index_articles.set(articles)
        self.index_generation.set(generation)
        self.index_loaded_at.set_to_current_time()

    def reloaded(self, outcome: str) -> None:
        self.reloads.labels(outcome).inc()

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        code = str(status)
        self.requests.labels(route, method, code).inc()
        self.latency.labels(route, method, code).observe(seconds)

    def close(self) -> None:
        """Tell the multiprocess collector this worker is gone (its live gauges drop out)."""
        if self.multiprocess:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())

    def exposition(self) -> tuple[bytes, str]:
        """The text format body and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Times every HTTP request and counts it under its route template and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            # path_format drops converters: "/v1/articles/{ref}/related", as in OpenAPI
            template = getattr(route, "path_format", None) or "<unmatched>"
            self.metrics.observe(template, scope["method"], status,
                                 time.perf_counter() - started)
