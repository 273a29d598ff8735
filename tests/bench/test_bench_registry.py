"""Every benchmark `python -m bench` lists is a module of its name with a main(argv) to run."""

from __future__ import annotations

import importlib
import inspect

from bench.__main__ import BENCHMARKS


def test_every_listed_benchmark_is_a_module_with_a_main() -> None:
    for name in BENCHMARKS:
        module = importlib.import_module(f"bench.{name.replace('-', '_')}")
        main = getattr(module, "main", None)
        assert callable(main), f"bench.{name.replace('-', '_')} has no main()"
        assert list(inspect.signature(main).parameters) == ["argv"], f"{name}: main(argv) expected"
