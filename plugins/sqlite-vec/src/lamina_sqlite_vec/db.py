"""The SQLite layer: connections, schema and every statement, as plain synchronous functions.

Each function takes an ``apsw.Connection`` and runs on the thread that owns it (see ``store``);
nothing here knows about asyncio.

Layout of the file (``key`` is an integer assigned when a vector DB is first registered, so any
vector DB id, whatever its characters, maps to safe table names)::

    lamina_sqlite_vec_collections(key INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT UNIQUE,
                                  dimension INTEGER, vector_db TEXT, created REAL)
    lsv_chunks_<key>(rowid INTEGER PRIMARY KEY, chunk_id TEXT UNIQUE, chunk TEXT)  -- Chunk JSON
    lsv_vec_<key>   vec0(embedding float[<dimension>] distance_metric=cosine)     -- same rowid
    lsv_fts_<key>   fts5(content, content='', contentless_delete=1)                -- same rowid

A chunk is one rowid across the three tables; every write touches them in one transaction.
"""

from __future__ import annotations

import array
import math
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import apsw
import sqlite_vec

from lamina.apis.common import content_to_text
from lamina.apis.vector_io import Chunk

REGISTRY = "lamina_sqlite_vec_collections"
VEC0_MAX_K = 4096  # sqlite-vec refuses a larger k in a KNN query
MAX_QUERY_TERMS = 256
PAGE_SIZE = 65536
MMAP_SIZE = 1 << 30  # address space, not memory: pages are the OS page cache's


class EmbeddingError(ValueError):
    """An embedding that cannot be stored (wrong length, NaN or infinite values)."""


@dataclass(frozen=True)
class Collection:
    """A vector DB's storage: its tables are ``lsv_*_<key>``."""

    key: int
    name: str
    dimension: int

    @property
    def chunks(self) -> str:
        return f"lsv_chunks_{self.key}"

    @property
    def vec(self) -> str:
        return f"lsv_vec_{self.key}"

    @property
    def fts(self) -> str:
        return f"lsv_fts_{self.key}"


# -- connections ------------------------------------------------------------------------------


def open_connection(path: str | Path, busy_timeout_ms: int = 30_000) -> apsw.Connection:
    """A connection with sqlite-vec loaded, WAL journal and a busy timeout."""
    conn = apsw.Connection(str(path))
    conn.set_busy_timeout(busy_timeout_ms)
    conn.enable_load_extension(True)
    conn.load_extension(sqlite_vec.loadable_path())
    conn.enable_load_extension(False)
    # Only takes effect on a new file. vec0 keeps vectors in 1024-row blobs (1.5 MB at 384 dims):
    # large pages mean short overflow chains, so faster inserts and scans.
    conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
    conn.execute("PRAGMA journal_mode=WAL").fetchall()
    conn.execute("PRAGMA synchronous=NORMAL")
    # vec0 reads every vector blob on each KNN query: map the file instead of copying pages
    # through SQLite's small default page cache (3-4x faster queries on files of tens of MB).
    conn.execute(f"PRAGMA mmap_size={MMAP_SIZE}").fetchall()
    return conn


class _Transaction:
    """``BEGIN [IMMEDIATE]`` ... ``COMMIT``, rolled back when the block raises."""

    def __init__(self, conn: apsw.Connection, *, write: bool) -> None:
        self.conn = conn
        self.begin = "BEGIN IMMEDIATE" if write else "BEGIN"

    def __enter__(self) -> apsw.Connection:
        self.conn.execute(self.begin)
        return self.conn

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.conn.execute("COMMIT")
        elif not self.conn.get_autocommit():
            self.conn.execute("ROLLBACK")


def write_txn(conn: apsw.Connection) -> _Transaction:
    return _Transaction(conn, write=True)


def read_txn(conn: apsw.Connection) -> _Transaction:
    return _Transaction(conn, write=False)


def init_schema(conn: apsw.Connection) -> None:
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {REGISTRY} ("
        " key INTEGER PRIMARY KEY AUTOINCREMENT,"
        " name TEXT NOT NULL UNIQUE,"
        " dimension INTEGER NOT NULL,"
        " vector_db TEXT,"
        " created REAL NOT NULL)"
    )


# -- collections ------------------------------------------------------------------------------


def _create_tables(conn: apsw.Connection, coll: Collection) -> None:
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {coll.chunks} ("
        " rowid INTEGER PRIMARY KEY, chunk_id TEXT NOT NULL UNIQUE, chunk TEXT NOT NULL)"
    )
    conn.execute(
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {coll.vec} USING vec0("
        f"embedding float[{coll.dimension}] distance_metric=cosine)"
    )
    conn.execute(
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {coll.fts} USING fts5("
        "content, content='', contentless_delete=1, tokenize='unicode61 remove_diacritics 2')"
    )


def _drop_tables(conn: apsw.Connection, coll: Collection) -> None:
    for table in (coll.vec, coll.fts, coll.chunks):
        conn.execute(f"DROP TABLE IF EXISTS {table}")


def find_collection(conn: apsw.Connection, name: str) -> Collection | None:
    row = conn.execute(f"SELECT key, dimension FROM {REGISTRY} WHERE name = ?", (name,)).fetchone()
    return Collection(row[0], name, row[1]) if row else None


def ensure_collection(
    conn: apsw.Connection, name: str, dimension: int, vector_db_json: str | None = None
) -> tuple[Collection, bool]:
    """The collection ``name`` with this dimension, created when missing (idempotent).

    A stored collection of another dimension is dropped and created anew (its vectors could not be
    searched with the new ones). Returns the collection and whether an old one was replaced.
    """
    with write_txn(conn):
        init_schema(conn)
        existing = find_collection(conn, name)
        replaced = False
        if existing is not None and existing.dimension != dimension:
            _drop_tables(conn, existing)
            conn.execute(f"DELETE FROM {REGISTRY} WHERE key = ?", (existing.key,))
            existing, replaced = None, True
        if existing is None:
            conn.execute(
                f"INSERT INTO {REGISTRY} (name, dimension, vector_db, created) VALUES (?, ?, ?, ?)",
                (name, dimension, vector_db_json, time.time()),
            )
            existing = Collection(conn.last_insert_rowid(), name, dimension)
        elif vector_db_json is not None:
            conn.execute(f"UPDATE {REGISTRY} SET vector_db = ? WHERE key = ?", (vector_db_json, existing.key))
        _create_tables(conn, existing)
        return existing, replaced


def drop_collection(conn: apsw.Connection, name: str) -> bool:
    """Drop ``name``'s tables and registry row; False when there was none."""
    with write_txn(conn):
        init_schema(conn)
        existing = find_collection(conn, name)
        if existing is None:
            return False
        _drop_tables(conn, existing)
        conn.execute(f"DELETE FROM {REGISTRY} WHERE key = ?", (existing.key,))
        return True


def list_collections(conn: apsw.Connection) -> list[Collection]:
    init_schema(conn)
    rows = conn.execute(f"SELECT key, name, dimension FROM {REGISTRY} ORDER BY key").fetchall()
    return [Collection(key, name, dim) for key, name, dim in rows]


# -- writing ----------------------------------------------------------------------------------


def vector_blob(embedding: Any, dimension: int) -> bytes | None:
    """float32 bytes of ``embedding`` for vec0; None for a zero vector (cosine is undefined).

    Raises ``EmbeddingError`` for a wrong length or a NaN / infinite value (also one that overflows
    float32). A zero vector is stored without a vector row: keyword search finds its chunk, vector
    search never returns it (vec0 would give it a NULL distance that sorts before every real one).
    """
    if hasattr(embedding, "dtype") and hasattr(embedding, "astype"):  # numpy, without importing it
        if str(embedding.dtype) == "float32":
            values = array.array("f", embedding.ravel().tobytes())
        else:  # array('f') turns what overflows float32 into inf (numpy's cast would warn)
            values = array.array("f", embedding.ravel().tolist())
    else:
        values = array.array("f", embedding)
    if len(values) != dimension:
        raise EmbeddingError(f"embedding has {len(values)} dimensions, the vector DB has {dimension}")
    # One float32 at most 3.4e38: a sum in float64 of any finite ones stays finite; NaN/inf propagate.
    if not math.isfinite(sum(values)):
        raise EmbeddingError("embedding has a NaN or infinite value")
    if not any(values):
        return None
    return values.tobytes()


@dataclass(frozen=True)
class Row:
    """A chunk ready to store."""

    chunk_id: str
    chunk_json: str
    text: str
    blob: bytes | None


def chunk_row(chunk: Chunk, dimension: int) -> Row:
    if not chunk.chunk_id:
        raise EmbeddingError("chunk has no chunk_id")
    if chunk.embedding is None:
        raise EmbeddingError(f"chunk {chunk.chunk_id!r} has no embedding")
    try:
        blob = vector_blob(chunk.embedding, dimension)
    except EmbeddingError as exc:
        raise EmbeddingError(f"chunk {chunk.chunk_id!r}: {exc}") from None
    return Row(
        chunk_id=chunk.chunk_id,
        chunk_json=chunk.model_dump_json(exclude={"embedding"}),
        text=content_to_text(chunk.content),
        blob=blob,
    )


def upsert_rows(conn: apsw.Connection, coll: Collection, rows: Sequence[Row]) -> None:
    """Insert or replace (by chunk_id) all rows in one transaction, across the three tables."""
    if not rows:
        return
    find = f"SELECT rowid FROM {coll.chunks} WHERE chunk_id = ?"
    update = f"UPDATE {coll.chunks} SET chunk = ? WHERE rowid = ?"
    insert = f"INSERT INTO {coll.chunks} (chunk_id, chunk) VALUES (?, ?)"
    del_vec = f"DELETE FROM {coll.vec} WHERE rowid = ?"
    del_fts = f"DELETE FROM {coll.fts} WHERE rowid = ?"
    add_vec = f"INSERT INTO {coll.vec} (rowid, embedding) VALUES (?, ?)"
    add_fts = f"INSERT INTO {coll.fts} (rowid, content) VALUES (?, ?)"
    with write_txn(conn):
        for row in rows:
            found = conn.execute(find, (row.chunk_id,)).fetchone()
            if found is not None:
                rowid = found[0]
                conn.execute(update, (row.chunk_json, rowid))
                conn.execute(del_vec, (rowid,))
                conn.execute(del_fts, (rowid,))
            else:
                conn.execute(insert, (row.chunk_id, row.chunk_json))
                rowid = conn.last_insert_rowid()
            if row.blob is not None:
                conn.execute(add_vec, (rowid, row.blob))
            if row.text:
                conn.execute(add_fts, (rowid, row.text))


def delete_ids(conn: apsw.Connection, coll: Collection, chunk_ids: Iterable[str]) -> int:
    """Delete chunks by id (ids not stored are ignored); returns how many were deleted."""
    find = f"SELECT rowid FROM {coll.chunks} WHERE chunk_id = ?"
    deleted = 0
    with write_txn(conn):
        for chunk_id in dict.fromkeys(chunk_ids):
            found = conn.execute(find, (chunk_id,)).fetchone()
            if found is None:
                continue
            rowid = found[0]
            conn.execute(f"DELETE FROM {coll.vec} WHERE rowid = ?", (rowid,))
            conn.execute(f"DELETE FROM {coll.fts} WHERE rowid = ?", (rowid,))
            conn.execute(f"DELETE FROM {coll.chunks} WHERE rowid = ?", (rowid,))
            deleted += 1
    return deleted


# -- reading ----------------------------------------------------------------------------------


def count(conn: apsw.Connection, coll: Collection) -> int:
    return conn.execute(f"SELECT count(*) FROM {coll.chunks}").fetchone()[0]


def cosine_score(distance: float | None) -> float | None:
    """vec0's cosine distance -> cosine similarity in [-1, 1]; None when undefined."""
    if distance is None or not math.isfinite(distance):
        return None
    return min(1.0, max(-1.0, 1.0 - distance))


def query_vector(conn: apsw.Connection, coll: Collection, embedding: Any, k: int) -> list[tuple[str, float]]:
    """The ``k`` nearest chunks by cosine similarity: [(chunk JSON, similarity)], best first.

    Exact search (vec0 scans every vector). A zero query vector matches nothing.
    """
    blob = vector_blob(embedding, coll.dimension)
    if blob is None:
        return []
    sql = (
        f"WITH knn AS (SELECT rowid, distance FROM {coll.vec} WHERE embedding MATCH ? AND k = ?) "
        f"SELECT knn.rowid, c.chunk, knn.distance FROM knn JOIN {coll.chunks} AS c ON c.rowid = knn.rowid"
    )  # no ORDER BY: vec0 refuses any but a lone "ORDER BY distance" once the CTE is inlined
    with read_txn(conn):
        rows = conn.execute(sql, (blob, min(k, VEC0_MAX_K))).fetchall()
    scored = [(cosine_score(distance), rowid, chunk) for rowid, chunk, distance in rows]
    scored = [hit for hit in scored if hit[0] is not None]
    scored.sort(key=lambda hit: (-hit[0], hit[1]))  # best first; ties by insertion order
    return [(chunk, score) for score, _, chunk in scored[:k]]


_TERM = re.compile(r"\w+", re.UNICODE)


def fts_query(text: str) -> str | None:
    """An FTS5 MATCH expression for ``text``: its words, each quoted, OR-ed; None when it has none.

    Only runs of word characters are kept, and each is quoted, so no punctuation, operator
    (AND, OR, NOT, NEAR), column filter or unbalanced quote in the text can make a syntax error.
    """
    terms = dict.fromkeys(t.lower() for t in _TERM.findall(text))
    if not terms:
        return None
    return " OR ".join(f'"{t}"' for t in list(terms)[:MAX_QUERY_TERMS])


def query_keyword(conn: apsw.Connection, coll: Collection, text: str, k: int) -> list[tuple[str, float]]:
    """The ``k`` best chunks by BM25 that match at least one word of ``text``: [(chunk JSON, score)].

    The score is FTS5's ``bm25()`` negated: > 0 for a match (FTS5 floors each term's IDF at 1e-6),
    higher is better.
    """
    match = fts_query(text)
    if match is None:
        return []
    sql = (
        f"WITH hits AS (SELECT rowid, bm25({coll.fts}) AS bm FROM {coll.fts} "
        f"WHERE {coll.fts} MATCH ? ORDER BY bm, rowid LIMIT ?) "
        f"SELECT c.chunk, hits.bm FROM hits JOIN {coll.chunks} AS c ON c.rowid = hits.rowid "
        "ORDER BY hits.bm, hits.rowid"
    )
    with read_txn(conn):
        rows = conn.execute(sql, (match, k)).fetchall()
    out = []
    for chunk, rank in rows:
        score = -rank if rank is not None and math.isfinite(rank) else 0.0
        out.append((chunk, max(0.0, score)))
    return out


def get_chunks(conn: apsw.Connection, coll: Collection, chunk_ids: Sequence[str]) -> dict[str, str]:
    """Chunk JSON by id, for the ids stored."""
    out: dict[str, str] = {}
    with read_txn(conn):
        for chunk_id in chunk_ids:
            row = conn.execute(f"SELECT chunk FROM {coll.chunks} WHERE chunk_id = ?", (chunk_id,)).fetchone()
            if row is not None:
                out[chunk_id] = row[0]
    return out


def parse_chunk(chunk_json: str) -> Chunk:
    return Chunk.model_validate_json(chunk_json)
