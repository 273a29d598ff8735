"""Lamina's inline::braintrust scoring provider: autoevals scorers judged by a served model."""
