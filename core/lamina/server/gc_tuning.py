"""Garbage collector settings for a serving process (``server.gc``), applied once the stack has started.

Why: CPython's cyclic collector runs a generation-0 pass every 700 net container allocations, and
every tenth of those a generation-1 pass, and so on up to full passes over every tracked object. A
started stack holds 100,000+ long-lived objects (pydantic models and schemas, provider clients,
routes, loaded libraries) that every full pass walks again, although none of them is garbage. Measured
in-process (sequential OpenAI chat completions through the remote::vllm adapter at c=16, the client in
the same process; docs/benchmarks.md "Garbage collection"): collections took 60-100 µs of every
~590 µs request; with the start-up heap frozen ~20 µs, and with a generation-0 threshold of 7,000 as
well almost none (a request's objects are freed by reference counting; a cycle is rare).

- ``freeze``: after start-up, ``gc.collect()`` then ``gc.freeze()``: what exists then moves to the
  permanent generation, which collections skip (it stays alive: start-up objects live as long as the
  server does). The start-up garbage is collected first, so nothing dead is frozen.
- ``gen0_threshold``: the net allocations between generation-0 passes (CPython's default 700). Higher
  means fewer passes, each over more young objects; cyclic garbage waits at most that many allocations.

Applied by ``lamina run`` only (``lamina.server.app.run_server``): a process that builds many apps
(the tests) keeps CPython's defaults, since freezing there would pin each test's leftovers.
"""

from __future__ import annotations

import gc

import structlog
from pydantic import BaseModel, ConfigDict, Field

log = structlog.get_logger(__name__)


class GcConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    freeze: bool = Field(
        default=True,
        description="Move the objects alive once the stack has started to the permanent generation, "
        "which the collector skips (gc.freeze).",
    )
    gen0_threshold: int = Field(
        default=7000,
        ge=1,
        description="Net container allocations between generation-0 collections (CPython's default: 700).",
    )


def apply(config: GcConfig) -> None:
    """Apply ``config`` to this process (once its start-up objects exist) and log what was done."""
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(config.gen0_threshold, gen1, gen2)
    frozen = 0
    if config.freeze:
        gc.collect()
        gc.freeze()
        frozen = gc.get_freeze_count()
    log.info("gc_tuned", frozen_objects=frozen, thresholds=list(gc.get_threshold()))
