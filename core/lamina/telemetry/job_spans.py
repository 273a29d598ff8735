"""A job's span: each run of a job (lamina.jobs) is its own trace, linked to the request that submitted it.

A job outlives its request (and may run after a restart, in another process), so its run is not a child
of the request's span: it is the root ``job {kind}`` of a new trace (lamina.job.id, lamina.job.kind,
lamina.job.attempt) with an OpenTelemetry link to the submitting request's span. The submitter's
``traceparent`` is kept in the job's ``owner`` (who submitted it), so the link survives a restart.
Whatever the handler does (model calls, scoring) are children of the run's span.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span

from lamina.telemetry import propagation, spans

current = spans.current


def submitter() -> dict[str, Any]:
    """The submitting request's trace context, for the job's owner ({} when telemetry is off)."""
    return propagation.carrier()


def start(job: Any) -> Span | None:
    tr = spans.tracer()
    if tr is None:
        return None
    links = []
    parent = propagation.context_from(getattr(job, "owner", None))
    if parent is not None:
        parent_span = trace.get_current_span(parent).get_span_context()
        if parent_span.is_valid:
            links.append(trace.Link(parent_span, {"lamina.link": "submitted_by"}))
    return tr.start_span(
        f"job {job.kind}",
        context=otel_context.Context(),  # a root: a new trace
        links=links,
        attributes={"lamina.job.id": job.id, "lamina.job.kind": job.kind, "lamina.job.attempt": job.attempts},
    )


def end(span: Span | None, failure: BaseException | None) -> None:
    spans.end(span, failure)
