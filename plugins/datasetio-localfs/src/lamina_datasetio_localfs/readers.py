"""Reading a page of rows from a file, one reader per format; every call blocks (run it in a thread).

Each reader answers ``read(start, stop)`` (rows ``[start, stop)``, fewer at the end of the file;
``stop`` None: to the end) and ``count()``, and never holds more of the file than a page and a parser
block:

* CSV / TSV (pyarrow's streaming reader): a page from row ``start`` seeks through the row index
  (``row_index``) when ``start`` is past the first stride; column types are inferred once, from the
  file's first block, and every page is parsed with them, so a column does not change type from page
  to page. A page where a later value does not fit them (a number column that turns to text) is read
  with every column as text.
* JSONL: one JSON object per line; seeks through the row index the same way.
* Parquet: row groups are skipped by their row counts (the footer says them); the group holding the
  page is streamed in batches.
* XLSX (openpyxl, read-only): the first sheet (or ``metadata.sheet``), its first row the column
  names. openpyxl streams the sheet's XML, so a deep page still reads the rows before it (XLSX holds
  at most about a million rows).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from lamina.errors import BadRequestError
from lamina_datasetio_localfs.row_index import IndexCache, file_key

FORMATS = ("csv", "tsv", "jsonl", "parquet", "xlsx")
CSV_BLOCK = 1 << 20  # bytes per pyarrow CSV block (its default); the first block infers the types
MIN_CSV_BLOCK = 64 * 1024
PARQUET_BATCH = 4096

Row = dict[str, Any]


class CsvReader:
    def __init__(self, path: Path, indexes: IndexCache, *, delimiter: str = ",") -> None:
        self.path = path
        self.indexes = indexes
        self.delimiter = delimiter
        self._schema: tuple[tuple[str, int, int], pa.Schema] | None = None  # (file key, schema)

    def _parse(self) -> pacsv.ParseOptions:
        # newlines_in_values: a quoted field may span lines (the row index allows for it too).
        return pacsv.ParseOptions(delimiter=self.delimiter, newlines_in_values=True)

    def schema(self) -> pa.Schema:
        key = file_key(self.path)
        if self._schema is None or self._schema[0] != key:
            read = pacsv.ReadOptions(block_size=CSV_BLOCK, use_threads=False)
            with pacsv.open_csv(self.path, read_options=read, parse_options=self._parse()) as reader:
                self._schema = (key, reader.schema)
        return self._schema[1]

    def count(self) -> int:
        return self.indexes.get(self.path, header=True, quoted=True).rows

    def read(self, start: int, stop: int | None) -> list[Row]:
        schema = self.schema()
        try:
            return self._read(start, stop, schema, as_text=False)
        except pa.ArrowInvalid:
            # A value past the first block does not fit the inferred types: read this page as text.
            return self._read(start, stop, schema, as_text=True)

    def _read(self, start: int, stop: int | None, schema: pa.Schema, *, as_text: bool) -> list[Row]:
        names = schema.names
        types = {f.name: (pa.string() if as_text else f.type) for f in schema}
        convert = pacsv.ConvertOptions(column_types=types, strings_can_be_null=False)
        want = None if stop is None else stop - start
        if start >= self.indexes.stride_hint:
            index = self.indexes.get(self.path, header=True, quoted=True)
            if start >= index.rows:
                return []
            first, offset = index.seek_point(start)
            block = _block_size(None if want is None else start - first + want)
            read = pacsv.ReadOptions(block_size=block, use_threads=False, column_names=names)
        else:
            first, offset = 0, 0
            block = _block_size(None if want is None else start + want)
            read = pacsv.ReadOptions(block_size=block, use_threads=False)
        with pa.OSFile(str(self.path)) as f:
            f.seek(offset)
            parse = self._parse()
            with pacsv.open_csv(f, read_options=read, parse_options=parse, convert_options=convert) as r:
                return _take_batches(r, start - first, want)


class JsonlReader:
    def __init__(self, path: Path, indexes: IndexCache) -> None:
        self.path = path
        self.indexes = indexes

    def count(self) -> int:
        return self.indexes.get(self.path, header=False, quoted=False).rows

    def read(self, start: int, stop: int | None) -> list[Row]:
        first, offset = 0, 0
        if start >= self.indexes.stride_hint:
            index = self.indexes.get(self.path, header=False, quoted=False)
            if start >= index.rows:
                return []
            first, offset = index.seek_point(start)
        out: list[Row] = []
        want = None if stop is None else stop - start
        with open(self.path, "rb") as f:
            f.seek(offset)
            row = first
            for line_no, line in enumerate(f):
                if not line.strip():
                    continue
                if row >= start:
                    out.append(_json_row(line, self.path, row, line_no if offset == 0 else None))
                    if want is not None and len(out) >= want:
                        break
                row += 1
        return out


def _json_row(line: bytes, path: Path, row: int, line_no: int | None) -> Row:
    try:
        value = json.loads(line)
    except ValueError as exc:
        where = f"line {line_no + 1}" if line_no is not None else f"row {row}"
        raise BadRequestError(
            f"{path.name}: {where} is not JSON ({exc}); a JSONL dataset holds one JSON object per line",
            param="source.uri",
        ) from None
    if not isinstance(value, dict):
        raise BadRequestError(
            f"{path.name}: row {row} is a JSON {type(value).__name__}, not an object; a JSONL dataset "
            f"holds one JSON object (the row's columns) per line",
            param="source.uri",
        )
    return value


class ParquetReader:
    def __init__(self, path: Path) -> None:
        self.path = path

    def count(self) -> int:
        return pq.ParquetFile(self.path).metadata.num_rows

    def read(self, start: int, stop: int | None) -> list[Row]:
        pf = pq.ParquetFile(self.path)
        meta = pf.metadata
        groups, skipped = [], 0
        for g in range(meta.num_row_groups):
            n = meta.row_group(g).num_rows
            if not groups and skipped + n <= start:
                skipped += n
                continue
            groups.append(g)
        if not groups:
            return []
        want = None if stop is None else stop - start
        batch = PARQUET_BATCH if want is None else max(1, min(PARQUET_BATCH, want))
        return _take_batches(pf.iter_batches(batch_size=batch, row_groups=groups), start - skipped, want)


class XlsxReader:
    def __init__(self, path: Path, sheet: str | None = None) -> None:
        self.path = path
        self.sheet = sheet

    def _rows(self, first: int = 0) -> Any:
        import openpyxl

        wb = openpyxl.load_workbook(self.path, read_only=True, data_only=True)
        try:
            ws = wb[self.sheet] if self.sheet else wb.worksheets[0]
        except KeyError:
            wb.close()
            raise BadRequestError(
                f"{self.path.name} has no sheet {self.sheet!r} (it has {', '.join(wb.sheetnames)}); set "
                f"metadata.sheet to one of them",
                param="metadata.sheet",
            ) from None
        try:
            rows = ws.iter_rows(values_only=True)
            header = next(rows, None)
            if header is None:
                return
            names = [str(h) if h is not None else f"column_{i}" for i, h in enumerate(header)]
            for values in itertools.islice(rows, first, None):
                if all(v is None for v in values):
                    continue
                yield dict(zip(names, values, strict=False))
        finally:
            wb.close()

    def count(self) -> int:
        return sum(1 for _ in self._rows())

    def read(self, start: int, stop: int | None) -> list[Row]:
        return _take(self._rows(), start, None if stop is None else stop - start)


def _take_batches(batches: Any, skip: int, want: int | None) -> list[Row]:
    """Rows ``[skip, skip + want)`` of a stream of record batches; only those rows become Python objects."""
    out: list[Row] = []
    for batch in batches:
        n = batch.num_rows
        if skip >= n:
            skip -= n
            continue
        stop = n if want is None else min(n, skip + want - len(out))
        out.extend(batch.slice(skip, stop - skip).to_pylist())
        skip = 0
        if want is not None and len(out) >= want:
            break
    return out


def _take(rows: Any, skip: int, want: int | None) -> list[Row]:
    it = itertools.islice(rows, skip, None if want is None else skip + want)
    return list(it)


def _block_size(rows: int | None) -> int:
    """Bytes per CSV block for a page: small pages parse a small block (types are fixed already)."""
    return CSV_BLOCK if rows is None else max(MIN_CSV_BLOCK, min(CSV_BLOCK, rows * 256))
