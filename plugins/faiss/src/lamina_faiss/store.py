"""The SQLite side: chunks, their embeddings and the FTS5 keyword index, one table pair per vector DB.

Everything here is synchronous and runs on a vector DB's own thread (``sqlite3`` connections are
used by the thread that opened them only). The file is the source of truth: the faiss index is
rebuilt or caught up from it whenever it is missing or behind.

Tables (``<p>`` is the kvstore namespace, made an SQL identifier, plus ``faiss_``):

- ``<p>vector_dbs``: the catalogue; ``n`` numbers a vector DB's own tables, ``token`` names its
  index file (new for every registration, so an index file never outlives its chunks' table).
- ``<p>chunks_<n>``: ``id`` (the faiss id; AUTOINCREMENT, so an id is never reused and an index
  entry never points at a different chunk), ``chunk_id``, ``doc`` (the chunk as JSON without its
  embedding), ``embedding`` (float32 bytes, as given).
- ``<p>fts_<n>``: FTS5 over the chunk's text, rowid = ``id``.
"""

from __future__ import annotations

import math
import re
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BUSY_TIMEOUT_MS = 5000
TOKENIZE = "'porter unicode61 remove_diacritics 2'"  # English stemming, case and accents folded
DF_CACHE_SIZE = 50_000
MAX_QUERY_TERMS = 64
_SQL_VARS = 500  # ids per IN (...) list, well under SQLite's variable limit
_TOKEN = re.compile(r"\w+")
_NOT_IDENT = re.compile(r"[^A-Za-z0-9_]")


def table_prefix(namespace: str | None) -> str:
    """``faiss_``, or ``<namespace>_faiss_`` with the namespace reduced to identifier characters."""
    if not namespace:
        return "faiss_"
    return _NOT_IDENT.sub("_", namespace).strip("_")[:40] + "_faiss_"


def query_terms(text: str) -> list[str]:
    """The distinct words of ``text``, lower-cased, at most ``MAX_QUERY_TERMS`` of them.

    Words are runs of letters, digits and underscores, so nothing FTS5 reads as syntax survives.
    """
    return list(dict.fromkeys(t.lower() for t in _TOKEN.findall(text)))[:MAX_QUERY_TERMS]


def or_query(terms: list[str]) -> str:
    """An FTS5 query matching any of ``terms``, each quoted (a string: never a syntax error)."""
    return " OR ".join(f'"{t}"' for t in terms)


def fts_query(text: str) -> str:
    """An FTS5 query matching any word of ``text``; ``""`` when the text has no word."""
    return or_query(query_terms(text))


def connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    # FULL: a committed insert is on disk before the request is acknowledged.
    conn.execute("PRAGMA synchronous=FULL")
    return conn


@dataclass(frozen=True)
class CatalogEntry:
    key: str
    n: int
    dimension: int
    token: str
    synced: str | None = None  # with a postgres kvstore: the "<token>:<generation>" this copy holds


class Catalog:
    """The ``vector_dbs`` table, on the provider's own thread."""

    def __init__(self, path: Path, prefix: str) -> None:
        self.path = path
        self.table = f"{prefix}vector_dbs"
        self.conn = connect(path)
        self.conn.execute(
            f"CREATE TABLE IF NOT EXISTS {self.table} (n INTEGER PRIMARY KEY AUTOINCREMENT, "
            "key TEXT NOT NULL UNIQUE, dimension INTEGER NOT NULL, token TEXT NOT NULL, "
            "vector_db TEXT NOT NULL, created REAL NOT NULL, synced TEXT)"
        )
        columns = {r[1] for r in self.conn.execute(f"PRAGMA table_info({self.table})")}
        if "synced" not in columns:  # a catalogue written before the column existed
            self.conn.execute(f"ALTER TABLE {self.table} ADD COLUMN synced TEXT")

    def close(self) -> None:
        self.conn.close()

    def get(self, key: str) -> CatalogEntry | None:
        row = self.conn.execute(
            f"SELECT key, n, dimension, token, synced FROM {self.table} WHERE key = ?", (key,)
        ).fetchone()
        return CatalogEntry(*row) if row else None

    def create(self, key: str, dimension: int, vector_db_json: str) -> CatalogEntry:
        token = uuid.uuid4().hex
        self.conn.execute(
            f"INSERT INTO {self.table} (key, dimension, token, vector_db, created) VALUES (?, ?, ?, ?, ?)",
            (key, dimension, token, vector_db_json, time.time()),
        )
        entry = self.get(key)
        assert entry is not None
        return entry

    def delete(self, entry: CatalogEntry, prefix: str) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self.conn.execute(f"DROP TABLE IF EXISTS {prefix}fts_{entry.n}")
            self.conn.execute(f"DROP TABLE IF EXISTS {prefix}chunks_{entry.n}")
            self.conn.execute(f"DELETE FROM {self.table} WHERE n = ?", (entry.n,))
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise


@dataclass
class Hit:
    id: int
    doc: str
    score: float


class ChunkTable:
    """One vector DB's chunks and keyword index; used on that vector DB's thread only."""

    def __init__(self, path: Path, prefix: str, n: int, dimension: int) -> None:
        self.path = path
        self.n = n
        self.dimension = dimension
        self.catalog = f"{prefix}vector_dbs"
        self.chunks = f"{prefix}chunks_{n}"
        self.fts = f"{prefix}fts_{n}"
        self.conn = connect(path)
        self.conn.execute(
            f"CREATE TABLE IF NOT EXISTS {self.chunks} (id INTEGER PRIMARY KEY AUTOINCREMENT, "
            "chunk_id TEXT NOT NULL UNIQUE, doc TEXT NOT NULL, embedding BLOB NOT NULL)"
        )
        self.conn.execute(
            f"CREATE VIRTUAL TABLE IF NOT EXISTS {self.fts} USING fts5(text, tokenize = {TOKENIZE})"
        )
        # Document frequencies of indexed terms (per connection, in memory: nothing stored).
        self.vocab = f"temp.vocab_{n}"
        self.conn.execute(
            f"CREATE VIRTUAL TABLE IF NOT EXISTS {self.vocab} USING fts5vocab(main, {self.fts}, row)"
        )
        self._df: dict[str, int] = {}  # cached document frequencies, valid around _df_total chunks
        self._df_total = 0
        self._tokenizer: sqlite3.Connection | None = None
        self._stem_cache: dict[str, list[str]] = {}

    def close(self) -> None:
        self.conn.close()
        if self._tokenizer is not None:
            self._tokenizer.close()

    # -- writes --------------------------------------------------------------------------------

    def upsert(
        self, rows: list[tuple[str, str, str, bytes]], synced: str | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Store ``(chunk_id, doc, text, embedding bytes)`` rows in one transaction.

        A chunk_id stored already is replaced: its row goes and the new one gets a new id.
        ``synced``, when given, is recorded in the catalogue in the same transaction.
        Returns ``(new ids, replaced ids)``.
        """
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            replaced = self._ids_of([r[0] for r in rows])
            self._delete_ids(replaced)
            seq = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (self.chunks,)).fetchone()
            base = seq[0] if seq else 0
            ids = np.arange(base + 1, base + 1 + len(rows), dtype=np.int64)
            conn.executemany(
                f"INSERT INTO {self.chunks} (id, chunk_id, doc, embedding) VALUES (?, ?, ?, ?)",
                ((int(i), cid, doc, emb) for i, (cid, doc, _, emb) in zip(ids, rows, strict=True)),
            )
            conn.executemany(
                f"INSERT INTO {self.fts} (rowid, text) VALUES (?, ?)",
                ((int(i), text) for i, (_, _, text, _) in zip(ids, rows, strict=True)),
            )
            self._mark(synced)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return ids, np.asarray(replaced, dtype=np.int64)

    def delete(self, chunk_ids: list[str], synced: str | None = None) -> np.ndarray:
        """Delete chunks by chunk_id (unknown ones ignored); returns the ids deleted."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            ids = self._ids_of(chunk_ids)
            self._delete_ids(ids)
            self._mark(synced)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return np.asarray(ids, dtype=np.int64)

    def mark(self, synced: str) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        self._mark(synced)
        self.conn.execute("COMMIT")

    def _mark(self, synced: str | None) -> None:
        if synced is not None:
            self.conn.execute(f"UPDATE {self.catalog} SET synced = ? WHERE n = ?", (synced, self.n))

    def _ids_of(self, chunk_ids: list[str]) -> list[int]:
        out: list[int] = []
        for part in _parts(list(dict.fromkeys(chunk_ids))):
            marks = ",".join("?" * len(part))
            out += [
                r[0]
                for r in self.conn.execute(
                    f"SELECT id FROM {self.chunks} WHERE chunk_id IN ({marks})", part
                ).fetchall()
            ]
        return out

    def _delete_ids(self, ids: list[int]) -> None:
        for part in _parts(ids):
            marks = ",".join("?" * len(part))
            self.conn.execute(f"DELETE FROM {self.chunks} WHERE id IN ({marks})", part)
            self.conn.execute(f"DELETE FROM {self.fts} WHERE rowid IN ({marks})", part)

    # -- reads ---------------------------------------------------------------------------------

    def rows(self) -> list[tuple[str, str, str, bytes]]:
        """Every chunk as ``(chunk_id, doc, text, embedding bytes)``, as ``upsert`` takes them."""
        return self.conn.execute(
            f"SELECT c.chunk_id, c.doc, f.text, c.embedding FROM {self.chunks} AS c "
            f"JOIN {self.fts} AS f ON f.rowid = c.id ORDER BY c.id"
        ).fetchall()

    def count(self) -> int:
        return self.conn.execute(f"SELECT count(*) FROM {self.chunks}").fetchone()[0]

    def ids(self) -> np.ndarray:
        rows = self.conn.execute(f"SELECT id FROM {self.chunks} ORDER BY id").fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def embeddings(
        self, ids: np.ndarray | None = None, batch: int = 10_000
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(ids, float32 matrix)`` in batches: of every chunk, or of the given ids."""
        if ids is None:
            cursor = self.conn.execute(f"SELECT id, embedding FROM {self.chunks} ORDER BY id")
            while rows := cursor.fetchmany(batch):
                yield self._matrix(rows)
            return
        for part in _parts([int(i) for i in ids], batch if batch < _SQL_VARS else _SQL_VARS):
            marks = ",".join("?" * len(part))
            rows = self.conn.execute(
                f"SELECT id, embedding FROM {self.chunks} WHERE id IN ({marks}) ORDER BY id", part
            ).fetchall()
            if rows:
                yield self._matrix(rows)

    def _matrix(self, rows: list[tuple[int, bytes]]) -> tuple[np.ndarray, np.ndarray]:
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), self.dimension)
        return ids, matrix

    def docs(self, ids: list[int]) -> dict[int, str]:
        """The stored JSON of the chunks with these ids (missing ids are left out)."""
        out: dict[int, str] = {}
        for part in _parts(ids):
            marks = ",".join("?" * len(part))
            out.update(
                self.conn.execute(f"SELECT id, doc FROM {self.chunks} WHERE id IN ({marks})", part).fetchall()
            )
        return out

    def keyword(self, text: str, k: int, total: int) -> list[Hit]:
        """The ``k`` best BM25 matches of any word of ``text``; score = -bm25, finite and >= 0.

        ``total`` is the number of chunks (an estimate will do). Words in more than half of them
        weigh nothing in FTS5's BM25 (their IDF is floored at 1e-6) yet ranking every chunk that
        holds one costs a B-tree lookup per chunk: half a second at 100k chunks. So they are left
        out of the ranked match, and chunks matching only them (which BM25 scores ~0) fill up the
        answer, unranked and scored 0, when the other words match fewer than ``k`` chunks.
        """
        terms = query_terms(text)
        if not terms:
            return []
        common = [t for t in terms if self._is_common(t, total)]
        rare = [t for t in terms if t not in common]
        rows: list[tuple[int, float]] = []
        if rare:
            # ``rank`` is bm25() with FTS5's ORDER BY rank LIMIT path; lower is better: negated below.
            rows = self.conn.execute(
                f"SELECT rowid, rank FROM {self.fts} WHERE {self.fts} MATCH ? ORDER BY rank LIMIT ?",
                (or_query(rare), k),
            ).fetchall()
        if common and len(rows) < k:
            rows = sorted(rows + self._fill(common, k - len(rows), {r[0] for r in rows}), key=lambda r: r[1])
        docs = self.docs([r[0] for r in rows])
        hits = []
        for rowid, rank in rows:
            if rowid in docs:
                score = -float(rank)
                hits.append(Hit(rowid, docs[rowid], score if math.isfinite(score) and score > 0.0 else 0.0))
        return hits

    def _fill(self, terms: list[str], n: int, taken: set[int]) -> list[tuple[int, float]]:
        """Up to ``n`` chunks matching ``terms`` and not in ``taken``, unranked, each with rank 0.0.

        Their BM25 is at most about 2e-6 per word (the floored IDF times at most k1 + 1); computing
        it exactly would cost the full pass over the words' postings that ``keyword`` avoids.
        """
        rows = self.conn.execute(
            f"SELECT rowid FROM {self.fts} WHERE {self.fts} MATCH ? LIMIT ?",
            (or_query(terms), n + len(taken)),
        )
        return [(r[0], 0.0) for r in rows if r[0] not in taken][:n]

    def _is_common(self, term: str, total: int) -> bool:
        """Whether every indexed term ``term`` stands for is in more than half of ``total`` chunks."""
        stems = self._stems(term)
        return bool(stems) and all(self._doc_frequency(s, total) * 2 > total for s in stems)

    def _stems(self, word: str) -> list[str]:
        """The terms the index's tokenizer makes of ``word`` (what a query for it looks up)."""
        if self._tokenizer is None:
            self._tokenizer = sqlite3.connect(":memory:", isolation_level=None)
            self._tokenizer.execute(f"CREATE VIRTUAL TABLE words USING fts5(text, tokenize = {TOKENIZE})")
            self._tokenizer.execute("CREATE VIRTUAL TABLE stems USING fts5vocab(words, row)")
        stems = self._stem_cache.get(word)
        if stems is None:
            if len(self._stem_cache) > DF_CACHE_SIZE:
                self._stem_cache.clear()
            tok = self._tokenizer
            tok.execute("DELETE FROM words")
            tok.execute("INSERT INTO words (text) VALUES (?)", (word,))
            stems = self._stem_cache[word] = [r[0] for r in tok.execute("SELECT term FROM stems")]
        return stems

    def _doc_frequency(self, term: str, total: int) -> int:
        # Cached: counting costs a pass over the term's postings (8 ms for one in 100k chunks).
        if abs(total - self._df_total) > 0.1 * self._df_total or len(self._df) > DF_CACHE_SIZE:
            self._df.clear()
            self._df_total = total
        df = self._df.get(term)
        if df is None:
            row = self.conn.execute(f"SELECT doc FROM {self.vocab} WHERE term = ?", (term,)).fetchone()
            df = self._df[term] = row[0] if row else 0
        return df


def _parts(values: list, size: int = _SQL_VARS) -> Iterator[list]:
    for i in range(0, len(values), size):
        yield values[i : i + size]
