"""Lamina's inline::meta-reference eval provider (docs/eval.md)."""
