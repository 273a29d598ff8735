"""Storage: the key-value store behind the registry and providers' metadata.

Backends are picked by a run config section such as ``metadata_store: {type: sqlite|postgres, ...}``
(the same fields as Llama Stack's kvstore configs).
"""

from lamina.storage.config import KVStoreConfig, PostgresKVStoreConfig, SqliteKVStoreConfig
from lamina.storage.kvstore import KVStore, StorageError, open_kvstore

__all__ = [
    "KVStore",
    "KVStoreConfig",
    "PostgresKVStoreConfig",
    "SqliteKVStoreConfig",
    "StorageError",
    "open_kvstore",
]
