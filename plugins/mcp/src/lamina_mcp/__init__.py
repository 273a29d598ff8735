"""Lamina's remote::model-context-protocol: tool groups whose tools an MCP server serves."""
