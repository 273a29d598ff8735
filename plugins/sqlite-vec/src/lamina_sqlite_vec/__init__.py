"""Lamina Vector IO provider ``inline::sqlite-vec``: sqlite-vec (vec0) + FTS5 in one SQLite file.

Importing the package is cheap; ``open_for_bench`` (for benchmarks: the index without a server)
imports apsw and sqlite-vec on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["open_for_bench"]


def __getattr__(name: str) -> Any:
    if name == "open_for_bench":
        from lamina_sqlite_vec.store import open_for_bench

        return open_for_bench
    raise AttributeError(f"module 'lamina_sqlite_vec' has no attribute {name!r}")
