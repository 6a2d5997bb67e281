"""Prometheus metrics of the event backbone (one registry per process)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_PUBLISHED = Counter(
    "studio_events_published_total", "Events committed to the store", ["type"]
)
EVENTS_HANDLED = Counter(
    "studio_events_handled_total", "Events handled by a consumer", ["consumer", "type"]
)
HANDLER_FAILURES = Counter(
    "studio_event_handler_failures_total", "Handler attempts that raised", ["consumer", "type"]
)
HANDLER_LATENCY = Histogram(
    "studio_event_handler_seconds",
    "Time spent in a consumer's handler",
    ["consumer"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
CONSUMER_LAG = Gauge(
    "studio_consumer_lag_positions", "Store head minus the consumer's checkpoint", ["consumer"]
)
PARKED = Gauge(
    "studio_events_parked", "Events parked or blocked behind a parked one", ["consumer", "status"]
)
EVENTS_RELAYED = Counter("studio_events_relayed_total", "Events published to the NATS transport")
