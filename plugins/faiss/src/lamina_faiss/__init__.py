"""Lamina's inline::faiss Vector IO provider: faiss for vectors, SQLite (FTS5) for chunks and keywords."""
