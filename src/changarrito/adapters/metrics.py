"""Prometheus metrics: every definition of the service, in one registry per process.

``Metrics`` owns a private ``CollectorRegistry`` (tests build many apps in one process) and a
small recording API that the intake, the workers, the LLM use case and the resolver call. It
never raises into its caller. What is exported (``docs/scaling.md`` has the table):

- ``changarrito_webhook_requests_total{outcome}`` and ``..._duration_seconds{outcome}``;
- ``changarrito_queue_depth{state}`` and ``changarrito_queue_oldest_age_seconds``, read from
  PostgreSQL when scraped (``refresh_queue``), at most once per ``CHANGARRITO_METRICS_QUEUE_CACHE``
  seconds (default 5) whatever the scrape rate;
- ``changarrito_whatsapp_sends_total{kind,outcome,graph_code}``;
- ``changarrito_llm_calls_total{provider,outcome,source}`` and ``..._duration_seconds{provider}``;
- ``changarrito_llm_tokens_total{provider,source,direction}``;
- ``changarrito_media_downloads_total{kind,outcome}``,
  ``changarrito_media_downloaded_bytes_total{kind}``,
  ``changarrito_transcriptions_total{provider,outcome,source}``,
  ``changarrito_transcribed_audio_seconds_total{provider,source}`` and
  ``changarrito_media_to_model_total{kind,provider,source}``;
- ``changarrito_cache_{hits,misses}_total{cache}`` and ``changarrito_cache_hit_ratio{cache}``;
- ``changarrito_credential_resolutions_total{integration,source}``.

Tenant ids become a ``tenant`` label of the LLM, media and credential counters only with
``CHANGARRITO_METRICS_TENANT_LABELS=on`` (default off): one series per tenant is fine for a
few hundred shops and ruinous for a hundred thousand.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Protocol
from uuid import UUID

import structlog
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from changarrito.adapters.postgres.queue_stats import QueueStats
from changarrito.domain.errors import ChangarritoError, ConfigurationError, StorageError
from changarrito.domain.model import Resolved
from changarrito.settings import MetricsSettings

log = structlog.get_logger(__name__)

# No ``*_created`` series: they double the output and nothing here reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]

WEBHOOK_OUTCOMES = (
    "accepted",
    "duplicate",
    "invalid-signature",
    "bad-request",
    "too-large",
    "unavailable",
    "error",
)
_FAST = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_SLOW = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: Stands for the platform where a tenant id is expected (``domain.assistant.PLATFORM``).
_NO_TENANT = UUID(int=0)


class CountsHits(Protocol):
    """A cache that counts its hits and misses (``TTLResolutionCache``, ``RemoteResolver``)."""

    hits: int
    misses: int


def outcome_of(error: BaseException | None, ok: str = "ok") -> str:
    """A bounded label for how a call ended: ``ok``, else the error's stable ``code``."""
    if error is None:
        return ok
    return error.code if isinstance(error, ChangarritoError) else "error"


class Metrics:
    """The metrics of one process (see the module doc); a ``domain.ports.MetricsRecorder``."""

    def __init__(
        self,
        settings: MetricsSettings | None = None,
        *,
        queue_stats: Callable[[], Awaitable[QueueStats]] | None = None,
    ) -> None:
        self.settings = settings or MetricsSettings()
        self.registry = r = CollectorRegistry()
        tenant = ["tenant"] if self.settings.tenant_labels else []
        self._webhooks = Counter(
            "changarrito_webhook_requests", "Meta webhook POSTs by outcome", ["outcome"], registry=r
        )
        self._webhook_seconds = Histogram(
            "changarrito_webhook_request_duration_seconds",
            "Meta webhook POSTs: time to answer (accepted ones include the group commit)",
            ["outcome"],
            buckets=_FAST,
            registry=r,
        )
        self._sends = Counter(
            "changarrito_whatsapp_sends",
            "Graph API calls by kind (message, read), outcome and Graph error code",
            ["kind", "outcome", "graph_code"],
            registry=r,
        )
        self._llm = Counter(
            "changarrito_llm_calls",
            "LLM chat calls by provider, outcome and credential source (tenant, platform)",
            ["provider", "outcome", "source", *tenant],
            registry=r,
        )
        self._llm_tokens = Counter(
            "changarrito_llm_tokens",
            "LLM tokens as the providers report them, by provider, credential source and "
            "direction (input, output)",
            ["provider", "source", "direction", *tenant],
            registry=r,
        )
        self._llm_seconds = Histogram(
            "changarrito_llm_call_duration_seconds",
            "LLM chat calls: time to answer",
            ["provider"],
            buckets=_SLOW,
            registry=r,
        )
        self._media = Counter(
            "changarrito_media_downloads",
            "Customers' media items downloaded from Graph, by kind and outcome",
            ["kind", "outcome", *tenant],
            registry=r,
        )
        self._media_bytes = Counter(
            "changarrito_media_downloaded_bytes",
            "Bytes of customers' media downloaded from Graph, by kind",
            ["kind", *tenant],
            registry=r,
        )
        self._transcriptions = Counter(
            "changarrito_transcriptions",
            "Voice-note transcriptions by provider, outcome and credential source",
            ["provider", "outcome", "source", *tenant],
            registry=r,
        )
        self._transcribed = Counter(
            "changarrito_transcribed_audio_seconds",
            "Seconds of audio transcribed (as the provider reports them), by credential source",
            ["provider", "source", *tenant],
            registry=r,
        )
        self._to_model = Counter(
            "changarrito_media_to_model",
            "Pictures and documents sent to a model, by kind, provider and credential source",
            ["kind", "provider", "source", *tenant],
            registry=r,
        )
        # Counted in a plain dict and exported at scrape time: this runs on every resolution,
        # and a labelled prometheus Counter (lock, label lookup) cost more than the resolution.
        self._credentials: dict[tuple[str, ...], int] = {}
        r.register(_CredentialCollector(self._credentials, ["integration", "source", *tenant]))
        # Every outcome's series exists from the start, resolved once (this runs per delivery).
        self._by_outcome = {
            o: (self._webhooks.labels(o), self._webhook_seconds.labels(o)) for o in WEBHOOK_OUTCOMES
        }
        self._caches: dict[str, CountsHits] = {}
        self._queue = _QueueCollector(self.settings.queue_cache, queue_stats)
        r.register(_CacheCollector(self._caches))
        r.register(self._queue)

    # --- recording ---------------------------------------------------------------------

    def webhook(self, outcome: str, seconds: float) -> None:
        count, duration = self._by_outcome.get(outcome) or self._by_outcome["error"]
        count.inc()
        duration.observe(max(0.0, seconds))

    def graph_call(self, kind: str, error: BaseException | None, graph_code: str | None) -> None:
        self._sends.labels(kind, outcome_of(error, "sent"), graph_code or "").inc()

    def llm_call(
        self,
        provider: str,
        source: str,
        tenant_id: UUID | None,
        seconds: float,
        error: BaseException | None = None,
        *,
        tokens: tuple[int, int] = (0, 0),
    ) -> None:
        tenant = self._tenant(tenant_id)
        self._llm.labels(provider, outcome_of(error), source, *tenant).inc()
        self._llm_seconds.labels(provider).observe(max(0.0, seconds))
        for direction, count in zip(("input", "output"), tokens, strict=True):
            if count > 0:
                self._llm_tokens.labels(provider, source, direction, *tenant).inc(count)

    def media_download(
        self, kind: str, tenant_id: UUID | None, size: int, error: BaseException | None
    ) -> None:
        tenant = self._tenant(tenant_id)
        self._media.labels(kind, outcome_of(error), *tenant).inc()
        if size > 0:
            self._media_bytes.labels(kind, *tenant).inc(size)

    def transcription(
        self,
        provider: str,
        source: str,
        tenant_id: UUID | None,
        seconds: float | None,
        error: BaseException | None = None,
    ) -> None:
        tenant = self._tenant(tenant_id)
        self._transcriptions.labels(provider, outcome_of(error), source, *tenant).inc()
        if seconds is not None and seconds > 0 and math.isfinite(seconds):
            self._transcribed.labels(provider, source, *tenant).inc(seconds)

    def media_to_model(self, kind: str, provider: str, source: str, tenant_id: UUID | None) -> None:
        self._to_model.labels(kind, provider, source, *self._tenant(tenant_id)).inc()

    def credential(self, resolved: Resolved) -> None:
        if self.settings.tenant_labels:
            key: tuple[str, ...] = (
                resolved.integration_type,
                resolved.source,
                *self._tenant(resolved.tenant_id),
            )
        else:
            key = (resolved.integration_type, resolved.source)
        counts = self._credentials
        counts[key] = counts.get(key, 0) + 1

    def watch_cache(self, name: str, cache: CountsHits) -> None:
        """Exports ``cache``'s own hit and miss counts at each scrape."""
        self._caches[name] = cache

    def _tenant(self, tenant_id: UUID | None) -> list[str]:
        if not self.settings.tenant_labels:
            return []
        return ["platform" if tenant_id in (None, _NO_TENANT) else str(tenant_id)]

    # --- exposition --------------------------------------------------------------------

    async def refresh_queue(self) -> None:
        """Reads the queue's depth unless a reading younger than the cache time exists."""
        await self._queue.refresh()

    def render(self) -> bytes:
        """The text exposition format (``CONTENT_TYPE``)."""
        return generate_latest(self.registry)


class _CredentialCollector:
    def __init__(self, counts: dict[tuple[str, ...], int], labels: list[str]) -> None:
        self.counts = counts
        self.labels = labels

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "changarrito_credential_resolutions",
            "Credentials served, by integration and source (tenant, platform)",
            labels=self.labels,
        )
        for key, value in list(self.counts.items()):
            family.add_metric([str(part) for part in key], value)
        yield family


class _CacheCollector:
    def __init__(self, caches: dict[str, CountsHits]) -> None:
        self.caches = caches

    def collect(self) -> Iterator[Metric]:
        hits = CounterMetricFamily(
            "changarrito_cache_hits", "Resolution cache hits", labels=["cache"]
        )
        misses = CounterMetricFamily(
            "changarrito_cache_misses", "Resolution cache misses", labels=["cache"]
        )
        ratio = GaugeMetricFamily(
            "changarrito_cache_hit_ratio",
            "Hits / (hits + misses) since the process started",
            labels=["cache"],
        )
        for name, cache in self.caches.items():
            h, m = cache.hits, cache.misses
            hits.add_metric([name], h)
            misses.add_metric([name], m)
            ratio.add_metric([name], h / (h + m) if h + m else 0.0)
        yield from (hits, misses, ratio)


class _QueueCollector:
    def __init__(
        self, cache_seconds: float, read: Callable[[], Awaitable[QueueStats]] | None
    ) -> None:
        self.cache_seconds = cache_seconds
        self.read = read
        self.stats: QueueStats | None = None
        self.read_at = -math.inf
        self.failures = 0
        self._lock: asyncio.Lock | None = None

    async def refresh(self) -> None:
        if self.read is None:  # no queue in this process's storage (the in-memory fakes)
            return
        if time.monotonic() - self.read_at < self.cache_seconds:
            return
        self._lock = self._lock or asyncio.Lock()
        async with self._lock:  # concurrent scrapes share one query
            if time.monotonic() - self.read_at < self.cache_seconds:
                return
            try:
                self.stats = await self.read()
            except StorageError as exc:
                self.failures += 1
                log.warning("metrics.queue_unreadable", error=exc.message)
            self.read_at = time.monotonic()

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "changarrito_queue_depth",
            "Inbound messages waiting (pending, due: claimable now) or being answered",
            labels=["state"],
        )
        age = GaugeMetricFamily(
            "changarrito_queue_oldest_age_seconds",
            "Since the oldest pending or processing inbound message was received",
        )
        if self.stats is not None:
            depth.add_metric(["pending"], self.stats.pending)
            depth.add_metric(["due"], self.stats.due)
            depth.add_metric(["processing"], self.stats.processing)
            age.add_metric([], self.stats.oldest_age_seconds)
        failures = CounterMetricFamily(
            "changarrito_queue_stats_failures",
            "Scrapes that could not read the queue (the last good reading is kept)",
            value=self.failures,
        )
        yield from (depth, age, failures)


def serve_metrics(metrics: Metrics) -> Any:
    """Serves ``metrics`` on ``CHANGARRITO_METRICS_PORT`` from a daemon thread (for
    ``changarrito worker``); ``None`` when the port is not set. Returns the server, whose
    ``shutdown()`` stops it."""
    from prometheus_client import start_http_server

    settings = metrics.settings
    if settings.port is None:
        return None
    try:
        server, _ = start_http_server(settings.port, addr=settings.host, registry=metrics.registry)
    except OSError as exc:
        raise ConfigurationError(
            f"CHANGARRITO_METRICS_PORT: cannot listen on {settings.host}:{settings.port} "
            f"({exc.strerror or exc})"
        ) from None
    log.info("metrics.listening", url=f"http://{settings.host}:{settings.port}/metrics")
    return server
