"""Lamina's inline::prompt-guard safety provider (jailguard)."""
