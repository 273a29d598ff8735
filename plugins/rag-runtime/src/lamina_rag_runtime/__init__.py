"""Lamina's inline::rag-runtime: the RAG tool over the Vector IO API."""
