"""Lamina inference provider for Ollama's native API."""
