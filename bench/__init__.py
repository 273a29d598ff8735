"""Benchmarks for Lamina: ``hatch run bench <name> [options]`` (see ``python -m bench --help``)."""
