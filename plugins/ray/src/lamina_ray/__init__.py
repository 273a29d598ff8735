"""Lamina's ray job executor: work items run on Ray actors, each holding a worker stack (docs/ray.md)."""
