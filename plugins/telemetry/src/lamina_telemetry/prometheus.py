"""Prometheus: the meter provider's metrics in the exposition format, for the core's ``GET /metrics``.

Why not ``opentelemetry-exporter-prometheus``: it is not installable here (no release of it is in the
package mirrors this project builds from), so this module is the bridge it would be: a pull
:class:`PrometheusReader` (an OpenTelemetry ``MetricReader`` that collects only when asked) and a
``prometheus_client`` collector turning each OpenTelemetry point into a metric family, registered in a
registry of its own (never the process-global one, which would mix in whatever else imported
prometheus_client). Translation, as OpenTelemetry's Prometheus compatibility spec describes it:

- names: characters outside ``[a-zA-Z0-9_:]`` become ``_`` and runs of ``_`` collapse; the unit is
  appended (``s`` -> ``_seconds``, ``By`` -> ``_bytes``, ``ms`` -> ``_milliseconds``; ``{request}``-style
  annotations are dropped); monotonic sums are counters (``_total``);
- attributes become labels (names sanitised the same way, values as strings; booleans ``true``/``false``);
- histograms keep their buckets (cumulative ``_bucket{le=...}`` up to ``+Inf``), ``_count`` and ``_sum``;
  non-monotonic sums and gauges are gauges.

Temporality is cumulative (a MetricReader's default), which is what Prometheus expects.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.metrics.export import (
    Gauge,
    Histogram,
    MetricReader,
    MetricsData,
    Sum,
)
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from lamina_telemetry.config import TelemetryConfig

_INVALID = re.compile(r"[^a-zA-Z0-9_:]+")
_INVALID_LABEL = re.compile(r"[^a-zA-Z0-9_]+")
_UNDERSCORES = re.compile(r"__+")
_ANNOTATION = re.compile(r"\{[^}]*\}")
_UNITS = {
    "s": "seconds",
    "ms": "milliseconds",
    "us": "microseconds",
    "ns": "nanoseconds",
    "min": "minutes",
    "h": "hours",
    "d": "days",
    "By": "bytes",
    "KiBy": "kibibytes",
    "MiBy": "mebibytes",
    "%": "percent",
}


def metric_name(name: str, unit: str, *, kind: str) -> str:
    """The Prometheus name of an OpenTelemetry metric (``kind``: counter, gauge or histogram); a counter's
    ``_total`` is added by prometheus_client."""
    base = _UNDERSCORES.sub("_", _INVALID.sub("_", name)).strip("_") or "metric"
    if base[0].isdigit():
        base = f"_{base}"
    suffix = _unit_suffix(unit, kind=kind)
    if suffix and not base.endswith(f"_{suffix}"):
        base = f"{base}_{suffix}"
    return base


def _unit_suffix(unit: str, *, kind: str) -> str:
    unit = _ANNOTATION.sub("", unit or "").strip()
    if not unit:
        return ""
    if unit == "1":
        return "ratio" if kind == "gauge" else ""
    if "/" in unit:  # e.g. By/s -> bytes_per_second
        num, _, den = unit.partition("/")
        per = {"s": "second", "min": "minute", "h": "hour", "d": "day"}.get(den, den)
        return _label_name(f"{_UNITS.get(num, num)}_per_{per}")
    return _label_name(_UNITS.get(unit, unit))


def _label_name(key: str) -> str:
    name = _UNDERSCORES.sub("_", _INVALID_LABEL.sub("_", key))
    return f"_{name}" if name[:1].isdigit() else name


def _label_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_label_value(v) for v in value) + "]"
    return str(value)


def _labels(attributes: Any) -> dict[str, str]:
    return {_label_name(k): _label_value(v) for k, v in (attributes or {}).items()}


def _bound(value: float) -> str:
    return repr(float(value))


class PrometheusReader(MetricReader):
    """A pull reader: it collects when Prometheus scrapes (through :class:`OTelCollector`), never on a
    timer."""

    def __init__(self) -> None:
        super().__init__()
        self._latest: MetricsData | None = None
        self._lock = threading.Lock()

    def _receive_metrics(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> None:
        self._latest = metrics_data

    def read(self) -> MetricsData | None:
        """Collect now and return what the meter provider holds (None before it is attached)."""
        with self._lock:  # one scrape at a time: _latest belongs to the collect that set it
            self._latest = None
            try:
                self.collect()
            except Exception:  # not attached to a meter provider yet (or shut down): nothing to show
                return None
            return self._latest

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._latest = None


class OTelCollector(Collector):
    """prometheus_client's view of a :class:`PrometheusReader`."""

    def __init__(self, reader: PrometheusReader) -> None:
        self.reader = reader

    def describe(self) -> list[Metric]:
        return []  # no collection at registration time

    def collect(self) -> Iterator[Metric]:
        data = self.reader.read()
        if data is None:
            return
        families: dict[str, Metric] = {}
        for resource_metrics in data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    _translate(metric, families)
        yield from families.values()


def _family(families: dict[str, Metric], name: str, doc: str, typ: str) -> Metric:
    family = families.get(name)
    if family is None or family.type != typ:
        family = families[name] = Metric(name, doc, typ)
    return family


def _translate(metric: Any, families: dict[str, Metric]) -> None:
    data = metric.data
    doc = metric.description or metric.name
    if isinstance(data, Histogram):
        name = metric_name(metric.name, metric.unit, kind="histogram")
        family = _family(families, name, doc, "histogram")
        for point in data.data_points:
            labels = _labels(point.attributes)
            cumulative = 0
            for bound, count in zip(point.explicit_bounds, point.bucket_counts, strict=False):
                cumulative += count
                family.add_sample(f"{name}_bucket", {**labels, "le": _bound(bound)}, cumulative)
            family.add_sample(f"{name}_bucket", {**labels, "le": "+Inf"}, point.count)
            family.add_sample(f"{name}_count", labels, point.count)
            family.add_sample(f"{name}_sum", labels, point.sum)
    elif isinstance(data, Sum) and data.is_monotonic:
        name = metric_name(metric.name, metric.unit, kind="counter")
        if name.endswith("_total"):
            name = name[: -len("_total")]
        family = _family(families, name, doc, "counter")
        for point in data.data_points:
            family.add_sample(f"{name}_total", _labels(point.attributes), point.value)
    elif isinstance(data, (Sum, Gauge)):
        name = metric_name(metric.name, metric.unit, kind="gauge")
        family = _family(families, name, doc, "gauge")
        for point in data.data_points:
            family.add_sample(name, _labels(point.attributes), point.value)
    # Exponential histograms have no Prometheus text form; the server records none.


@dataclass(frozen=True)
class PrometheusSetup:
    """What the telemetry provider wires: ``reader`` goes to the meter provider's readers, ``exposition``
    to ``TelemetrySettings.prometheus_exposition`` (the core's GET /metrics calls it)."""

    reader: PrometheusReader
    exposition: Callable[[], tuple[bytes, str]]


def build_prometheus(config: TelemetryConfig) -> PrometheusSetup | None:
    """The Prometheus reader and exposition for ``config``, or None when ``prometheus`` is off."""
    if not config.prometheus:
        return None
    reader = PrometheusReader()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(OTelCollector(reader))

    def exposition() -> tuple[bytes, str]:
        # Text format 0.0.4: every Prometheus reads it (the names are sanitised already).
        return generate_latest(registry), CONTENT_TYPE_PLAIN_0_0_4

    return PrometheusSetup(reader, exposition)
