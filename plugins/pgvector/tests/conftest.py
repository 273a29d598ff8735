"""Fixtures: PostgreSQL 18 with pgvector (lamina.testing.pgvector) for the whole session."""

from lamina.testing.pgvector import pgvector_server  # noqa: F401 - re-exported fixture
