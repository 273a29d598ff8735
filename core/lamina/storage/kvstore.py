"""The key-value store interface every backend implements, and ``open_kvstore``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime

from lamina.errors import LaminaError
from lamina.storage.config import KVStoreConfig, PostgresKVStoreConfig, SqliteKVStoreConfig


class StorageError(LaminaError):
    """The metadata store failed (unreachable, locked, ...): 503, the request can be retried."""

    status = 503
    error_type = "storage_error"

    @property
    def client_message(self) -> str:
        # The message names the database (host, port, user, file path): the server log gets it
        # (request_failed), the client only learns that storage failed.
        return "the server's storage is unavailable; retry later (the server log has the details)"


def prefix_end(prefix: str) -> str:
    """The smallest string greater than every string starting with ``prefix`` (code point order)."""
    return prefix + "\U0010ffff"


class KVStore(ABC):
    """String keys to string values, ordered by key (code point order), with optional expiry.

    A ``namespace`` in the config is prepended to every key (``namespace:key``) and stripped from
    keys returned, so several components can share one database.
    """

    def __init__(self, namespace: str | None) -> None:
        self._ns = f"{namespace}:" if namespace else ""

    def _k(self, key: str) -> str:
        return self._ns + key

    def _strip(self, key: str) -> str:
        return key[len(self._ns) :]

    @abstractmethod
    async def initialize(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def get(self, key: str) -> str | None:
        """The value, or None if missing or expired."""

    @abstractmethod
    async def set(self, key: str, value: str, expiration: datetime | None = None) -> None:
        """Insert or replace; ``expiration`` (aware datetime) makes the key vanish after it."""

    async def set_many(self, items: list[tuple[str, str]]) -> None:
        """Insert or replace several keys (no expiration); a store may write them in one transaction."""
        for key, value in items:
            await self.set(key, value)

    @abstractmethod
    async def add(self, key: str, value: str) -> bool:
        """Insert ``key`` unless it holds a value (an expired one does not count); True when this call
        inserted it. One statement on the key's uniqueness, so of several processes adding one key to a
        shared database exactly one wins (a counter's next number, without a lock per process)."""

    @abstractmethod
    async def increment(self, key: str, amount: int, expiration: datetime) -> int:
        """Add ``amount`` to the integer at ``key`` (a missing or expired key counts from 0, and takes
        ``expiration``) and return the new value. One statement, so processes sharing the database
        all count: none of their increments is lost (a request quota shared by replicas)."""

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Remove the key; missing keys are not an error."""

    @abstractmethod
    async def items_in_range(self, start_key: str, end_key: str) -> list[tuple[str, str]]:
        """(key, value) for start_key <= key <= end_key, ordered by key."""

    async def values_in_range(self, start_key: str, end_key: str) -> list[str]:
        return [value for _, value in await self.items_in_range(start_key, end_key)]

    async def keys_in_range(self, start_key: str, end_key: str) -> list[str]:
        return [key for key, _ in await self.items_in_range(start_key, end_key)]

    async def items_with_prefix(self, prefix: str) -> list[tuple[str, str]]:
        return await self.items_in_range(prefix, prefix_end(prefix))


async def open_kvstore(config: KVStoreConfig) -> KVStore:
    """Create and initialise the backend ``config.type`` names."""
    if isinstance(config, SqliteKVStoreConfig):
        from lamina.storage.sqlite import SqliteKVStore

        store: KVStore = SqliteKVStore(config)
    elif isinstance(config, PostgresKVStoreConfig):
        from lamina.storage.postgres import PostgresKVStore

        store = PostgresKVStore(config)
    else:  # pragma: no cover - the discriminated union admits nothing else
        raise TypeError(f"unknown kvstore config {type(config).__name__}")
    await store.initialize()
    return store
