"""Lamina's inline::meta-reference telemetry provider."""
