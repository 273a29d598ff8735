"""Lamina's inline::reference batches provider: OpenAI's Batches API (docs/batches.md)."""
