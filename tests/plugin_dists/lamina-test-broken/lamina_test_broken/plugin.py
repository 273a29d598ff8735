"""Fails on import, like a plugin whose dependency is missing or whose code has a bug."""

raise RuntimeError("lamina-test-broken fails to import on purpose")
