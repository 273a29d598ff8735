"""Lamina's inline::basic scoring provider: scoring functions that need no model."""
