"""Lamina: an open LLM application server built as a plugin framework."""

__version__ = "0.1.0"
