"""The faiss side: one cosine-similarity index per vector DB, keyed by the chunks' SQLite ids.

Vectors are L2-normalised and searched by inner product, so a score is the cosine similarity
(a zero vector stays zero and scores 0 against everything). The index is an ``IndexIDMap`` over
``IndexHNSWFlat`` or ``IndexFlatIP``: faiss ids are the chunk rows' ids, which SQLite never reuses,
so an id in a saved index always means the same vector.

Deletes: a flat index removes ids at once (``remove_ids``, linear). HNSW cannot remove, so a
deleted or replaced chunk's id becomes a *tombstone*: kept in the graph (it still routes searches)
but excluded from results by an ``IDSelector`` passed with every search. Once tombstones pass
``tombstone_rebuild_ratio`` of the entries the provider rebuilds the index from SQLite in the
background (``build``) and swaps it in.

Threads: an index is searched and changed on its vector DB's own thread only; ``save`` may run on
another thread while that one searches (both only read), and ``lock`` keeps changes out meanwhile.
Searches use one OpenMP thread (a parallel region for one query costs more than it saves, and
faiss's IndexIDMap search with 2 threads was measured 100x slower here); adds use ``add_threads``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from lamina_faiss.store import ChunkTable

ADD_BATCH = 10_000  # vectors per faiss add call while building (a cancel is noticed between calls)


def default_add_threads() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores)


@dataclass(frozen=True)
class IndexSettings:
    kind: str  # "hnsw" | "flat"
    dimension: int
    m: int = 32
    ef_construction: int = 80
    ef_search: int = 64
    add_threads: int = 1


def normalized(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (a copy, float32, C order); zero rows stay zero."""
    out = np.array(vectors, dtype=np.float32, order="C", copy=True)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    np.divide(out, norms, out=out, where=norms > 0)
    return out


class VectorIndex:
    def __init__(self, settings: IndexSettings, index: faiss.IndexIDMap | None = None) -> None:
        self.settings = settings
        self.index = index if index is not None else _empty(settings)
        self.tombstones: set[int] = set()
        self.lock = threading.Lock()  # held while the index changes or is written to disk
        self._selector: faiss.IDSelector | None = None
        self._params: dict[int, faiss.SearchParameters] = {}

    # -- sizes ---------------------------------------------------------------------------------

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def live(self) -> int:
        return self.ntotal - len(self.tombstones)

    def ids(self) -> np.ndarray:
        return faiss.vector_to_array(self.index.id_map).astype(np.int64, copy=False)

    def needs_rebuild(self, ratio: float) -> bool:
        return self.settings.kind == "hnsw" and len(self.tombstones) > max(16, ratio * self.ntotal)

    # -- changes -------------------------------------------------------------------------------

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        vectors = normalized(vectors)
        with self.lock:
            faiss.omp_set_num_threads(self.settings.add_threads)
            try:
                self.index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))
            finally:
                faiss.omp_set_num_threads(1)

    def remove(self, ids: np.ndarray) -> None:
        """Drop these ids from results: removed from a flat index, tombstoned in an HNSW one."""
        if len(ids) == 0:
            return
        if self.settings.kind == "flat":
            with self.lock:
                self.index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64))
            return
        self.tombstones.update(int(i) for i in ids)
        self._tombstones_changed()

    def _tombstones_changed(self) -> None:
        self._params.clear()
        if not self.tombstones:
            self._selector = None
            return
        dead = np.fromiter(self.tombstones, dtype=np.int64, count=len(self.tombstones))
        self._selector = faiss.IDSelectorNot(faiss.IDSelectorBatch(dead))

    def reconcile(self, table: ChunkTable) -> tuple[int, int]:
        """Make the index hold exactly the table's chunks; returns (ids added, ids dropped).

        Ids the table has and the index lacks (inserted after the index was saved) are added from
        the stored embeddings; ids the index has and the table lacks (deleted since) are removed or
        tombstoned.
        """
        table_ids = table.ids()
        if self.ntotal == 0:
            added = 0
            for ids, matrix in table.embeddings():
                self.add(ids, matrix)
                added += len(ids)
            return added, 0
        index_ids = self.ids()
        missing = np.setdiff1d(table_ids, index_ids, assume_unique=True)
        extra = np.setdiff1d(index_ids, table_ids, assume_unique=True)
        for ids, matrix in table.embeddings(missing):
            self.add(ids, matrix)
        self.tombstones.clear()
        if len(extra):
            self.remove(extra)
        else:
            self._tombstones_changed()
        return len(missing), len(extra)

    # -- search --------------------------------------------------------------------------------

    def search(self, embedding: list[float], k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of the ``k`` nearest live chunks, best first; scores are cosines in [-1, 1]."""
        k = min(k, self.live)
        if k <= 0:
            return np.empty(0, dtype=np.float32), np.empty(0, dtype=np.int64)
        query = normalized(np.asarray(embedding, dtype=np.float32).reshape(1, -1))
        scores, ids = self.index.search(query, k, params=self._search_params(k))
        keep = ids[0] >= 0
        scores, ids = scores[0][keep], ids[0][keep]
        np.clip(scores, -1.0, 1.0, out=scores)
        return scores, ids

    def _search_params(self, k: int) -> faiss.SearchParameters | None:
        if self.settings.kind == "flat":
            if self._selector is None:
                return None
            key = 0
        else:
            key = max(self.settings.ef_search, k)
        params = self._params.get(key)
        if params is None:
            if self.settings.kind == "flat":
                params = faiss.SearchParameters(sel=self._selector)
            elif self._selector is None:
                params = faiss.SearchParametersHNSW(efSearch=key)
            else:
                params = faiss.SearchParametersHNSW(efSearch=key, sel=self._selector)
            self._params[key] = params
        return params

    # -- persistence ---------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write the index to ``path`` atomically (temporary file, fsync, rename, fsync the folder)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with self.lock:
            faiss.write_index(self.index, str(tmp))
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    @classmethod
    def load(cls, path: Path, settings: IndexSettings) -> VectorIndex | None:
        """The index saved at ``path`` if it is there, readable and built with these settings."""
        if not path.exists():
            return None
        try:
            index = faiss.read_index(str(path))
        except RuntimeError:
            return None
        if not isinstance(index, faiss.IndexIDMap) or index.d != settings.dimension:
            return None
        if index.metric_type != faiss.METRIC_INNER_PRODUCT:
            return None
        inner = faiss.downcast_index(index.index)
        if settings.kind == "flat" and type(inner) is not faiss.IndexFlatIP:
            return None
        if settings.kind == "hnsw" and (
            type(inner) is not faiss.IndexHNSWFlat or inner.hnsw.nb_neighbors(1) != settings.m
        ):
            return None
        return cls(settings, index)

    @classmethod
    def build(
        cls,
        settings: IndexSettings,
        batches: Iterable[tuple[np.ndarray, np.ndarray]],
        cancelled: Callable[[], bool] = lambda: False,
    ) -> VectorIndex | None:
        """A new index of ``batches`` of (ids, vectors); None if ``cancelled()`` turned true."""
        index = cls(settings)
        for ids, matrix in batches:
            for start in range(0, len(ids), ADD_BATCH):
                if cancelled():
                    return None
                index.add(ids[start : start + ADD_BATCH], matrix[start : start + ADD_BATCH])
        return index


def _empty(settings: IndexSettings) -> faiss.IndexIDMap:
    if settings.kind == "flat":
        inner = faiss.IndexFlatIP(settings.dimension)
    else:
        inner = faiss.IndexHNSWFlat(settings.dimension, settings.m, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = settings.ef_construction
        inner.hnsw.efSearch = settings.ef_search
    return faiss.IndexIDMap(inner)  # faiss's wrapper keeps a reference to `inner`
