"""Per-provider and per-model limits on provider calls: concurrency, requests and tokens per minute,
interactive calls before batch calls (docs/limits.md).

``settings`` is the run config's ``limits`` section, ``gate`` admits calls under it, ``proxy`` wraps a
provider so the routers' calls go through its gate.
"""
