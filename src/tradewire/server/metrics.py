"""Prometheus metrics of one gateway process (``GET /metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "GatewayMetrics"]


class GatewayMetrics:
    """Counters and gauges, each on a registry private to the process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.up = Gauge("tradewire_up", "1 while the gateway serves", registry=r)
        self.zmq_frames = Counter(
            "tradewire_zmq_frames_received", "ZeroMQ messages received", ["socket"], registry=r
        )
        self.rejected = Counter(
            "tradewire_inputs_rejected",
            "Inputs refused, by endpoint and code",
            ["endpoint", "code"],
            registry=r,
        )
        self.sessions = Gauge("tradewire_live_sessions", "Open /ws/session connections", registry=r)
        self.deliveries = Counter(
            "tradewire_deliveries_settled",
            "User events that reached a final state",
            ["priority", "state"],
            registry=r,
        )
        self.journaled = Counter(
            "tradewire_intake_journaled",
            "Guaranteed events acked QUEUED from the intake journal, before the store's commit",
            registry=r,
        )
        self.journal_unreleased = Gauge(
            "tradewire_intake_journal_unreleased",
            "Intake journal entries whose events the store does not hold yet",
            registry=r,
        )
        self.http_requests = Counter(
            "tradewire_http_requests", "HTTP requests served, by route", ["route"], registry=r
        )

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
