"""Lamina's inline::llm-as-judge scoring provider: a served model judges each row."""
