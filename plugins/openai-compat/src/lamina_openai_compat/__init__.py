"""Lamina inference providers for OpenAI-compatible services."""
