"""A sparse row -> byte offset index of a line-oriented file (CSV, TSV, JSONL), built in one pass.

Paging deep into a large file would otherwise re-parse it from the top for every page. One scan over
the bytes (numpy: a few seconds for a gigabyte, in 8 MiB chunks, so memory stays flat) records where
every ``STRIDE``-th row starts and how many rows there are; a page then seeks to the nearest indexed
row at or before its start and parses at most ``STRIDE - 1`` rows it does not return.

Rows are records: a newline ends one unless it is inside a quoted CSV field (an odd number of ``"``
since the record began; ``""`` escapes count twice, so the parity holds). Empty lines are not rows
(the CSV parser and the JSONL reader skip them too). For CSV the first record is the header.

Indexes are cached per file and keyed by (path, size, mtime): a file that changes is indexed again.
"""

from __future__ import annotations

import os
import threading
from array import array
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

STRIDE = 1024
SCAN_CHUNK = 8 * 1024 * 1024
CACHED_INDEXES = 64

_NL, _CR, _QUOTE = 10, 13, 34


@dataclass(frozen=True)
class RowIndex:
    key: tuple[str, int, int]  # (path, size, mtime_ns) of the file it describes
    rows: int  # data rows (the CSV header is not one)
    offsets: array  # byte offset of row 0, STRIDE, 2*STRIDE, ...
    stride: int = STRIDE

    def seek_point(self, row: int) -> tuple[int, int]:
        """(indexed row at or before ``row``, its byte offset); ``row`` < ``rows``."""
        slot = min(row // self.stride, len(self.offsets) - 1)
        return slot * self.stride, self.offsets[slot]


def file_key(path: Path) -> tuple[str, int, int]:
    st = os.stat(path)
    return (str(path), st.st_size, st.st_mtime_ns)


def build_index(path: Path, *, header: bool, quoted: bool, stride: int = STRIDE) -> RowIndex:
    """Scan ``path`` once (blocking: run it in a thread)."""
    key = file_key(path)
    offsets = array("q")
    rows = 0  # data rows seen
    header_pending = header
    record_start = 0  # byte offset where the current record began
    parity = 0  # quotes seen in the current record, mod 2
    last_byte = -1  # the byte before this chunk
    pos = 0
    with open(path, "rb") as f:
        while chunk := f.read(SCAN_CHUNK):
            arr = np.frombuffer(chunk, dtype=np.uint8)
            newlines = np.flatnonzero(arr == _NL)
            if quoted and newlines.size:
                # uint8 wraps at 256, which keeps the parity.
                quotes = np.cumsum(arr == _QUOTE, dtype=np.uint8)
                ends = newlines[((quotes[newlines] + parity) & 1) == 0]
                parity = (parity + int(quotes[-1])) & 1
            else:
                ends = newlines
                if quoted:
                    parity = (parity + int(np.count_nonzero(arr == _QUOTE))) & 1
            if ends.size:
                abs_ends = ends.astype(np.int64) + pos
                starts = np.empty_like(abs_ends)
                starts[0] = record_start
                starts[1:] = abs_ends[:-1] + 1
                lengths = abs_ends - starts
                before_end = np.where(ends > 0, arr[np.maximum(ends - 1, 0)], last_byte)
                blank = (lengths == 0) | ((lengths == 1) & (before_end == _CR))
                row_starts = starts[~blank]
                if header_pending and row_starts.size:
                    header_pending = False
                    row_starts = row_starts[1:]
                if row_starts.size:
                    numbers = np.arange(rows, rows + row_starts.size)
                    offsets.extend(row_starts[numbers % stride == 0].tolist())
                    rows += int(row_starts.size)
                record_start = int(abs_ends[-1]) + 1
            last_byte = int(arr[-1])
            pos += len(chunk)
    tail = pos - record_start
    if tail > 0 and not (tail == 1 and last_byte == _CR):  # a last record without a newline
        if header_pending:
            header_pending = False
        else:
            if rows % stride == 0:
                offsets.append(record_start)
            rows += 1
    return RowIndex(key=key, rows=rows, offsets=offsets, stride=stride)


class IndexCache:
    """The indexes of recently read files, rebuilt when a file changes (thread-safe)."""

    def __init__(self, size: int = CACHED_INDEXES) -> None:
        self.size = size
        self._items: OrderedDict[str, RowIndex] = OrderedDict()
        self._lock = threading.Lock()
        self._building: dict[tuple[str, int, int], threading.Lock] = {}
        self.builds = 0  # how many scans ran (tests check an index is reused)
        # A page starting before this row parses from the top of the file instead of building an index.
        self.stride_hint = STRIDE

    def get(self, path: Path, *, header: bool, quoted: bool) -> RowIndex:
        key = file_key(path)
        with self._lock:
            cached = self._items.get(key[0])
            if cached is not None and cached.key == key:
                self._items.move_to_end(key[0])
                return cached
            building = self._building.setdefault(key, threading.Lock())
        with building:  # one scan per file version, however many pages ask at once
            with self._lock:
                cached = self._items.get(key[0])
                if cached is not None and cached.key == key:
                    return cached
            index = build_index(path, header=header, quoted=quoted)
            with self._lock:
                self.builds += 1
                self._items[key[0]] = index
                self._items.move_to_end(key[0])
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
                self._building.pop(key, None)
            return index
