"""Lamina's inline::code-interpreter: Python in a bubblewrap sandbox, Llama Stack's code_interpreter tool."""
