"""Lamina's ``remote::chromadb`` Vector IO provider: chunks stored in a Chroma server (v2 REST API)."""

from lamina_chromadb.bench import open_for_bench

__all__ = ["open_for_bench"]
