"""Lamina datasetio provider ``inline::localfs``: dataset rows from local files, data: URIs and Files API
files, read a page at a time."""
