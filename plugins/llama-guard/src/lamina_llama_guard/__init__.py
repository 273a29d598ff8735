"""Lamina's inline::llama-guard: safety shields judged by a Llama Guard model through the Inference API."""
