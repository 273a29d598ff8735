"""Lamina's inline::rules: regex, keyword and PII/secret detector shields, no model needed."""
