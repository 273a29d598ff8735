"""Lamina files provider ``inline::localfs``: uploaded files on local disk, metadata in a SQL table."""
