"""Helpers for provider authors: lifecycle base class, pooled upstream HTTP, OpenAI translation."""

from lamina.providers.base import ProviderBase, ProviderContext

__all__ = ["ProviderBase", "ProviderContext"]
