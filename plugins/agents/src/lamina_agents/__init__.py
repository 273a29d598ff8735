"""Lamina's inline::meta-reference agents provider: the agent-loop engine and the Agents API on it."""
