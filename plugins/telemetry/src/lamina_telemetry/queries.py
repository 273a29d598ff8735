"""The telemetry API's reads over the trace store: traces, spans, span trees and metric series.

Attribute filters follow Llama Stack 0.2.12: a trace matches when ONE of its spans satisfies every
condition (``eq``, ``ne``, ``gt``, ``lt``; a span without the attribute satisfies none of them, ``ne``
included). ``query_spans`` answers the spans of the matching traces (within ``max_depth`` levels of the
root) that carry every attribute of ``attributes_to_return``, with only those attributes (an empty list:
every span, with all of them, as in Llama Stack). Comparisons
are SQL's on the JSON value: numbers as numbers, strings as strings.
"""

from __future__ import annotations

import json
import re
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from lamina.apis.telemetry import (
    MetricDataPoint,
    MetricLabel,
    MetricLabelOperator,
    MetricQueryType,
    MetricSeries,
    QueryCondition,
    QueryMetricsRequest,
    Span,
    SpanStatus,
    SpanWithStatus,
    Trace,
)
from lamina.errors import BadRequestError, NotFoundError
from lamina.request_context import TRACE_OWNER_ATTRIBUTE, TRACES_OF
from lamina_telemetry.store import TraceStore

_OPS = {"eq": "=", "ne": "<>", "gt": ">", "lt": "<"}
_TRACE_FIELDS = {
    "start_time": "start_ns",
    "end_time": "end_ns",
    "trace_id": "trace_id",
    "root_span_id": "span_id",
}
#: most spans one query_spans (or save_spans_to_dataset) answers: the newest ones
MAX_SPANS = 10_000
#: a tree walk without max_depth stops here (deeper spans would be a cycle of bad parent ids)
UNBOUNDED_DEPTH = 10_000
_GRANULARITY = re.compile(r"^(\d+)([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
#: most points one query_metrics reads from the store
MAX_POINTS = 1_000_000


def _dt(ns: int | None) -> datetime | None:
    return None if ns is None else datetime.fromtimestamp(ns / 1e9, tz=UTC)


def _loads(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    return json.loads(value) if value else {}


def _filter_value(condition: QueryCondition, index: int, field: str) -> Any:
    value = condition.value
    if value is None or isinstance(value, (dict, list)):
        raise BadRequestError(
            f"{field}[{index}].value: {value!r} cannot be compared; give a string, a number or a boolean",
            param=f"{field}[{index}].value",
        )
    return value


class _Params:
    """Placeholders numbered in the order their values are added (PostgreSQL's $n, SQLite's ?)."""

    def __init__(self, store: TraceStore) -> None:
        self.store = store
        self.values: list[Any] = []

    def add(self, value: Any, cast: str = "") -> str:
        self.values.append(value)
        placeholder = self.store._p(len(self.values))
        return f"{placeholder}{cast}" if self.store.backend == "postgres" else placeholder


def _attribute(store: TraceStore, params: _Params, alias: str, key: str) -> str:
    """The SQL expression of one attribute's JSON value on span ``alias``."""
    if store.backend == "postgres":
        return f"({alias}.attributes -> {params.add(key, '::text')})"
    return f"json_extract({alias}.attributes, {params.add(_json_path(key))})"


def _json_path(key: str) -> str:
    # Quoted, so a dotted name (gen_ai.request.model) is one key, not a path.
    return '$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _conditions(
    store: TraceStore, params: _Params, alias: str, filters: list[QueryCondition], field: str
) -> list[str]:
    out = []
    for i, condition in enumerate(filters):
        value = _filter_value(condition, i, field)
        expr = _attribute(store, params, alias, condition.key)
        if store.backend == "postgres":
            out.append(f"{expr} {_OPS[condition.op.value]} {params.add(json.dumps(value), '::jsonb')}")
        else:
            out.append(f"{expr} {_OPS[condition.op.value]} {params.add(value)}")
    return out


def _visible(store: TraceStore, params: _Params, alias: str) -> str:
    """SQL true for the spans of traces the caller may read: every trace, or (``TRACES_OF`` set by access
    control) those with a span whose ``enduser.id`` is the caller's."""
    principal = TRACES_OF.get()
    if principal is None:
        return "1 = 1"
    owner = _attribute(store, params, "v", TRACE_OWNER_ATTRIBUTE)
    if store.backend == "postgres":
        value = params.add(json.dumps(principal), "::jsonb")
    else:
        value = params.add(principal)
    return f"EXISTS (SELECT 1 FROM {store.spans} v WHERE v.trace_id = {alias}.trace_id AND {owner} = {value})"


def _order(order_by: list[str] | None) -> str:
    if not order_by:
        return "r.start_ns DESC"
    parts = []
    for item in order_by:
        descending = item.startswith("-")
        name = item[1:] if descending else item
        column = _TRACE_FIELDS.get(name)
        if column is None:
            raise BadRequestError(
                f"order_by: '{item}' is not a trace field; use one of {', '.join(_TRACE_FIELDS)}, with a "
                f"leading '-' for descending",
                param="order_by",
            )
        parts.append(f"r.{column} {'DESC' if descending else 'ASC'}")
    return ", ".join(parts)


async def query_traces(
    store: TraceStore,
    attribute_filters: list[QueryCondition] | None,
    limit: int,
    offset: int,
    order_by: list[str] | None,
) -> list[Trace]:
    sql, params = traces_sql(store, attribute_filters, limit, offset, order_by)
    rows = await store._fetch(sql, params)
    return [Trace(trace_id=t, root_span_id=s, start_time=_dt(st), end_time=_dt(en)) for t, s, st, en in rows]


def traces_sql(
    store: TraceStore,
    attribute_filters: list[QueryCondition] | None,
    limit: int,
    offset: int,
    order_by: list[str] | None,
) -> tuple[str, list[Any]]:
    """query_traces' statement and parameters (the tests read its query plan)."""
    params = _Params(store)
    # A caller that propagates one trace into several requests leaves several roots of it here: the
    # trace is its earliest (as get_trace answers), listed once. "e.root + 0": not the root index, which
    # made SQLite walk every root for each (63 s for 100 traces of 100,000 spans); the primary key's
    # trace_id prefix finds a trace's few spans.
    where = (
        f"r.root = 1 AND NOT EXISTS (SELECT 1 FROM {store.spans} e WHERE e.trace_id = r.trace_id "
        f"AND e.root + 0 = 1 AND (e.start_ns < r.start_ns "
        f"OR (e.start_ns = r.start_ns AND e.span_id < r.span_id)))"
    )
    if attribute_filters:
        conds = _conditions(store, params, "s", attribute_filters, "attribute_filters")
        matching = " AND ".join(conds)
        where += f" AND EXISTS (SELECT 1 FROM {store.spans} s WHERE s.trace_id = r.trace_id AND {matching})"
    where += f" AND {_visible(store, params, 'r')}"
    sql = (
        f"SELECT r.trace_id, r.span_id, r.start_ns, r.end_ns FROM {store.spans} r WHERE {where} "
        f"ORDER BY {_order(order_by)}, r.span_id LIMIT {params.add(limit)} OFFSET {params.add(offset)}"
    )
    return sql, params.values


async def get_trace(store: TraceStore, trace_id: str) -> Trace:
    params = _Params(store)
    rows = await store._fetch(
        f"SELECT t.span_id, t.start_ns, t.end_ns FROM {store.spans} t "
        f"WHERE t.trace_id = {params.add(trace_id)} AND t.root = 1 AND {_visible(store, params, 't')} "
        f"ORDER BY t.start_ns, t.span_id LIMIT 1",
        params.values,
    )
    if not rows:
        raise NotFoundError(
            f"trace '{trace_id}' is not in the trace store (never recorded, not sampled, or past its ttl); "
            f"list traces with POST /v1/telemetry/traces",
            param="trace_id",
        )
    span_id, start, end = rows[0]
    return Trace(trace_id=trace_id, root_span_id=span_id, start_time=_dt(start), end_time=_dt(end))


_SPAN_SELECT = "s.trace_id, s.span_id, s.parent_span_id, s.name, s.start_ns, s.end_ns, s.status, s.attributes"


def _span(row: tuple[Any, ...], keep: list[str] | None, with_status: bool = False) -> Span:
    trace_id, span_id, parent, name, start, end, status, attributes = row[:8]
    attrs = _loads(attributes)
    if keep:  # None or [] (as in Llama Stack): every attribute
        attrs = {key: attrs[key] for key in keep if key in attrs}
    fields = {
        "trace_id": trace_id,
        "span_id": span_id,
        "parent_span_id": parent,
        "name": name,
        "start_time": _dt(start),
        "end_time": _dt(end),
        "attributes": attrs,
    }
    if with_status:
        return SpanWithStatus(**fields, status=SpanStatus(status) if status else None)
    return Span(**fields)


async def get_span(store: TraceStore, trace_id: str, span_id: str) -> Span:
    params = _Params(store)
    rows = await store._fetch(
        f"SELECT {_SPAN_SELECT} FROM {store.spans} s WHERE s.trace_id = {params.add(trace_id)} "
        f"AND s.span_id = {params.add(span_id)} AND {_visible(store, params, 's')}",
        params.values,
    )
    if not rows:
        raise NotFoundError(
            f"span '{span_id}' of trace '{trace_id}' is not in the trace store; get the trace's spans with "
            f"POST /v1/telemetry/spans/{{root_span_id}}/tree",
            param="span_id",
        )
    return _span(rows[0], None)


async def get_span_tree(
    store: TraceStore, span_id: str, attributes_to_return: list[str] | None, max_depth: int | None
) -> dict[str, SpanWithStatus]:
    params = _Params(store)
    start = params.add(span_id)
    visible = _visible(store, params, "f")
    depth = params.add(max_depth or UNBOUNDED_DEPTH)
    sql = (
        f"WITH RECURSIVE tree(trace_id, span_id, depth) AS ("
        f"SELECT f.trace_id, f.span_id, 1 FROM {store.spans} f WHERE f.span_id = {start} AND {visible} "
        f"UNION ALL SELECT c.trace_id, c.span_id, t.depth + 1 FROM {store.spans} c "
        f"JOIN tree t ON c.trace_id = t.trace_id AND c.parent_span_id = t.span_id WHERE t.depth < {depth}) "
        f"SELECT {_SPAN_SELECT} FROM tree t JOIN {store.spans} s ON s.trace_id = t.trace_id "
        f"AND s.span_id = t.span_id ORDER BY t.depth, s.start_ns"
    )
    rows = await store._fetch(sql, params.values)
    if not rows:
        raise NotFoundError(
            f"span '{span_id}' is not in the trace store (never recorded, not sampled, or past its ttl)",
            param="span_id",
        )
    out: dict[str, SpanWithStatus] = {}
    for row in rows:
        span = _span(row, attributes_to_return, with_status=True)
        out.setdefault(span.span_id, span)  # type: ignore[arg-type]
    return out


async def query_spans(
    store: TraceStore,
    attribute_filters: list[QueryCondition],
    attributes_to_return: list[str],
    max_depth: int | None,
) -> list[Span]:
    params = _Params(store)
    conds = _conditions(store, params, "m", attribute_filters, "attribute_filters")
    conds.append(_visible(store, params, "m"))
    matched = f"SELECT DISTINCT m.trace_id FROM {store.spans} m WHERE {' AND '.join(conds)}"
    depth = params.add(max_depth or UNBOUNDED_DEPTH)
    present = []
    for key in attributes_to_return:
        expr = _attribute(store, params, "s", key)
        # A JSON null counts as absent, as in Llama Stack.
        if store.backend == "postgres":  # the same $n twice: PostgreSQL numbers its parameters
            present.append(f"jsonb_typeof{expr} <> 'null'")
        else:
            present.append(f"{expr} IS NOT NULL")
    sql = (
        f"WITH RECURSIVE matched(trace_id) AS ({matched}), "
        f"tree(trace_id, span_id, depth) AS ("
        f"SELECT r.trace_id, r.span_id, 1 FROM {store.spans} r JOIN matched ON r.trace_id = matched.trace_id "
        f"WHERE r.root = 1 "
        f"UNION ALL SELECT c.trace_id, c.span_id, t.depth + 1 FROM {store.spans} c "
        f"JOIN tree t ON c.trace_id = t.trace_id AND c.parent_span_id = t.span_id WHERE t.depth < {depth}) "
        f"SELECT {_SPAN_SELECT} FROM tree t JOIN {store.spans} s ON s.trace_id = t.trace_id "
        f"AND s.span_id = t.span_id"
        + (f" WHERE {' AND '.join(present)}" if present else "")
        + f" ORDER BY s.start_ns DESC LIMIT {params.add(MAX_SPANS)}"
    )
    rows = await store._fetch(sql, params.values)
    spans = [_span(row, attributes_to_return) for row in rows]
    spans.reverse()  # oldest first, as a trace reads
    return spans


# -- metrics -----------------------------------------------------------------------------------------


def granularity_seconds(granularity: str | None) -> int | None:
    """``1m`` -> 60; None: no bucketing. A 400 naming ``granularity`` for anything else."""
    if granularity is None:
        return None
    match = _GRANULARITY.match(granularity.strip())
    if match is None or int(match.group(1)) == 0:
        raise BadRequestError(
            f"granularity: '{granularity}' is not a bucket width; give a positive number and a unit s, m, h, "
            f"d or w (30s, 1m, 1h, 1d), or null for every point",
            param="granularity",
        )
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def _matchers(request: QueryMetricsRequest) -> list[tuple[str, MetricLabelOperator, Any]]:
    out = []
    for i, matcher in enumerate(request.label_matchers or []):
        value: Any = matcher.value
        if matcher.operator in (MetricLabelOperator.REGEX_MATCH, MetricLabelOperator.REGEX_NOT_MATCH):
            try:
                value = re.compile(matcher.value)
            except re.error as exc:
                raise BadRequestError(
                    f"label_matchers[{i}].value: '{matcher.value}' is not a regular expression ({exc})",
                    param=f"label_matchers[{i}].value",
                ) from None
        out.append((matcher.name, matcher.operator, value))
    return out


def _labels_match(labels: dict[str, str], matchers: list[tuple[str, MetricLabelOperator, Any]]) -> bool:
    for name, op, value in matchers:
        actual = labels.get(name, "")  # Prometheus: a missing label is the empty string
        if op == MetricLabelOperator.EQUALS and actual != value:
            return False
        if op == MetricLabelOperator.NOT_EQUALS and actual == value:
            return False
        if op == MetricLabelOperator.REGEX_MATCH and not value.fullmatch(actual):
            return False
        if op == MetricLabelOperator.REGEX_NOT_MATCH and value.fullmatch(actual):
            return False
    return True


async def query_metrics(store: TraceStore, request: QueryMetricsRequest) -> list[MetricSeries]:
    """The metric's series by label set: range queries one point per bucket (``granularity``, aligned to
    the epoch; sums add up, gauges keep the bucket's last value), instant queries one point for the range."""
    width = granularity_seconds(request.granularity) if request.query_type == MetricQueryType.RANGE else None
    end_time = request.end_time if request.end_time is not None else int(time.time()) + 1
    if end_time < request.start_time:
        raise BadRequestError(
            f"end_time: {end_time} is before start_time {request.start_time}; give end_time >= start_time",
            param="end_time",
        )
    matchers = _matchers(request)
    p = store._p
    rows = await store._fetch(
        f"SELECT labels, ts_ns, value, kind FROM {store.points} WHERE name = {p(1)} AND ts_ns >= {p(2)} "
        f"AND ts_ns <= {p(3)} ORDER BY ts_ns LIMIT {p(4)}",
        [request.metric_name, request.start_time * 1_000_000_000, end_time * 1_000_000_000, MAX_POINTS],
    )
    # label set -> bucket start (seconds) -> value
    series: dict[str, dict[int, float]] = defaultdict(dict)
    for labels_json, ts_ns, value, kind in rows:
        labels = json.loads(labels_json)
        if not _labels_match(labels, matchers):
            continue
        seconds = ts_ns // 1_000_000_000
        if request.query_type == MetricQueryType.INSTANT:
            bucket = end_time
        elif width is None:
            bucket = seconds
        else:
            bucket = seconds - seconds % width
        buckets = series[labels_json]
        buckets[bucket] = value if kind == "gauge" else buckets.get(bucket, 0.0) + value
    return [
        MetricSeries(
            metric=request.metric_name,
            labels=[MetricLabel(name=k, value=str(v)) for k, v in sorted(json.loads(key).items())],
            values=[MetricDataPoint(timestamp=ts, value=v) for ts, v in sorted(buckets.items())],
        )
        for key, buckets in sorted(series.items())
    ]
