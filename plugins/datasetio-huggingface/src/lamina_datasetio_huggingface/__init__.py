"""Lamina datasetio provider ``remote::huggingface``: datasets through the Hugging Face ``datasets``
library."""
