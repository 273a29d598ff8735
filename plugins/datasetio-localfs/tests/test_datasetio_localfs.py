"""inline::localfs (datasetio) in process: every format and source, paging, appended rows kept across a
restart, the row index, and the 400s for sources it cannot read."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from lamina.apis.datasets import Dataset
from lamina.errors import BadRequestError
from lamina.providers.base import ProviderContext
from lamina.specs import Api
from lamina_datasetio_localfs.config import LocalFSDatasetIOConfig
from lamina_datasetio_localfs.provider import LocalFSDatasetIO
from lamina_datasetio_localfs.row_index import build_index

ROWS = [{"input_query": f"q{i}", "expected_answer": f"a{i}", "n": i} for i in range(25)]


def _context(tmp_path: Path) -> ProviderContext:
    return ProviderContext(
        api=Api.datasetio,
        provider_id="localfs",
        provider_type="inline::localfs",
        state_dir=tmp_path / "state",
    )


_OPEN: list[LocalFSDatasetIO] = []


@pytest.fixture(autouse=True)
async def _close_providers() -> Any:
    yield
    while _OPEN:
        await _OPEN.pop().shutdown()  # its SQLite thread would keep the test process alive


async def _provider(tmp_path: Path, kvstore: dict[str, Any] | None = None) -> LocalFSDatasetIO:
    config = LocalFSDatasetIOConfig.model_validate({"kvstore": kvstore})
    provider = LocalFSDatasetIO(config, _context(tmp_path))
    await provider.initialize()
    _OPEN.append(provider)
    return provider


def _dataset(source: dict[str, Any], identifier: str = "ds", **metadata: Any) -> Dataset:
    return Dataset(
        identifier=identifier,
        provider_id="localfs",
        purpose="eval/question-answer",
        source=source,
        metadata=metadata,
    )


def _uri(path: Path) -> dict[str, Any]:
    return {"type": "uri", "uri": str(path)}


def _write(tmp_path: Path, fmt: str, rows: list[dict[str, Any]] = ROWS) -> Path:
    path = tmp_path / f"rows.{fmt}"
    table = pa.Table.from_pylist(rows)
    if fmt == "csv":
        pacsv.write_csv(table, path)
    elif fmt == "tsv":
        pacsv.write_csv(table, path, pacsv.WriteOptions(delimiter="\t"))
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif fmt == "parquet":
        pq.write_table(table, path, row_group_size=7)  # several row groups to skip
    elif fmt == "xlsx":
        import openpyxl

        wb = openpyxl.Workbook()
        ws = wb.active
        ws.append(list(rows[0]))
        for r in rows:
            ws.append(list(r.values()))
        wb.save(path)
    return path


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "parquet", "xlsx"])
async def test_each_format_pages_like_llama_stack(tmp_path: Path, fmt: str) -> None:
    provider = await _provider(tmp_path)
    dataset = _dataset(_uri(_write(tmp_path, fmt)))
    await provider.register_dataset(dataset)

    first = await provider.iterrows(dataset, 0, 10)
    assert first.data == ROWS[:10] and first.has_more
    last = await provider.iterrows(dataset, 20, 10)
    assert last.data == ROWS[20:] and not last.has_more
    exact = await provider.iterrows(dataset, 15, 10)
    assert exact.data == ROWS[15:] and not exact.has_more
    everything = await provider.iterrows(dataset, 3, None)
    assert everything.data == ROWS[3:] and not everything.has_more
    past = await provider.iterrows(dataset, 100, 5)
    assert past.data == [] and not past.has_more
    assert (await provider.iterrows(dataset, 0, 0)).has_more


async def test_data_uris_base64_and_plain(tmp_path: Path) -> None:
    provider = await _provider(tmp_path)
    csv_text = 'input_query,expected_answer\nWhat is 1+1?,2\n"Say ""hi"", twice","hi, hi"\n'
    encoded = base64.b64encode(csv_text.encode()).decode()
    b64 = _dataset({"type": "uri", "uri": "data:text/csv;base64," + encoded})
    plain = _dataset({"type": "uri", "uri": "data:text/csv," + quote(csv_text)}, identifier="plain")
    line = base64.b64encode(b'{"a": [1, 2]}\n').decode()
    jsonl = _dataset({"type": "uri", "uri": "data:application/jsonl;base64," + line}, identifier="jsonl")
    expected = [
        {"input_query": "What is 1+1?", "expected_answer": 2},
        {"input_query": 'Say "hi", twice', "expected_answer": "hi, hi"},
    ]
    for dataset in (b64, plain):
        await provider.register_dataset(dataset)
    assert (await provider.iterrows(b64, 0, None)).data[0]["input_query"] == "What is 1+1?"
    assert (await provider.iterrows(plain, 1, 1)).data == [expected[1]]
    await provider.register_dataset(jsonl)
    assert (await provider.iterrows(jsonl, 0, None)).data == [{"a": [1, 2]}]


async def test_file_uris_and_rows(tmp_path: Path) -> None:
    provider = await _provider(tmp_path)
    path = _write(tmp_path, "jsonl")
    by_uri = _dataset({"type": "uri", "uri": path.as_uri()})
    rows = _dataset({"type": "rows", "rows": ROWS[:3]}, identifier="rows")
    for dataset in (by_uri, rows):
        await provider.register_dataset(dataset)
    assert (await provider.iterrows(by_uri, 24, 5)).data == ROWS[24:]
    page = await provider.iterrows(rows, 1, 1)
    assert page.data == ROWS[1:2] and page.has_more


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def kvstore(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any] | None:
    """The provider's kvstore: its default SQLite file, or a fresh table on the real PostgreSQL."""
    if request.param == "sqlite":
        return None
    server = request.getfixturevalue("postgres_server")
    return server.kvstore_config(table_name=f"datasetio_{uuid.uuid4().hex[:12]}")


async def test_appended_rows_follow_the_source_and_survive_a_restart(
    tmp_path: Path, kvstore: dict[str, Any] | None
) -> None:
    provider = await _provider(tmp_path, kvstore)
    dataset = _dataset(_uri(_write(tmp_path, "csv")))
    await provider.register_dataset(dataset)
    added = [{"input_query": f"new{i}", "expected_answer": "x", "n": 100 + i} for i in range(1500)]
    await provider.append_rows(dataset, added[:1200])
    await provider.append_rows(dataset, added[1200:])
    await _OPEN.pop().shutdown()

    restarted = await _provider(tmp_path, kvstore)
    await restarted.register_dataset(dataset)
    page = await restarted.iterrows(dataset, 20, 10)
    assert page.data == ROWS[20:] + added[:5] and page.has_more
    across_chunks = await restarted.iterrows(dataset, 25 + 995, 10)
    assert across_chunks.data == added[995:1005]
    tail = await restarted.iterrows(dataset, 25 + 1495, None)
    assert tail.data == added[1495:] and not tail.has_more

    await restarted.unregister_dataset(dataset)
    await restarted.register_dataset(dataset)
    assert (await restarted.iterrows(dataset, 0, None)).data == ROWS  # appended rows went with it


def _tricky_csv(path: Path, rows: int) -> list[dict[str, Any]]:
    """Quoted newlines, quotes, CRLF, blank lines, and no newline after the last row."""
    expected, lines = [], ["id,text\r\n"]
    for i in range(rows):
        text = f'line one of {i}\nline "two"' if i % 7 == 0 else f"plain {i}"
        expected.append({"id": i, "text": text})
        quoted = '"' + text.replace('"', '""') + '"'
        lines.append(f"{i},{quoted}\r\n")
        if i % 11 == 0:
            lines.append("\r\n")
    path.write_text("".join(lines).rstrip("\r\n"), newline="")
    return expected


def test_the_row_index_agrees_with_the_parser(tmp_path: Path) -> None:
    path = tmp_path / "tricky.csv"
    expected = _tricky_csv(path, 5000)
    index = build_index(path, header=True, quoted=True, stride=100)
    parsed = pacsv.read_csv(path, parse_options=pacsv.ParseOptions(newlines_in_values=True))
    assert index.rows == 5000 == parsed.num_rows
    data = path.read_bytes()
    for slot, offset in enumerate(index.offsets):
        row = expected[slot * 100]
        assert data[offset:].startswith(f"{row['id']},".encode()), slot


async def test_deep_pages_reuse_one_index_and_a_changed_file_is_indexed_again(tmp_path: Path) -> None:
    path = tmp_path / "tricky.csv"
    expected = _tricky_csv(path, 5000)
    provider = await _provider(tmp_path)
    dataset = _dataset(_uri(path))
    await provider.register_dataset(dataset)
    for start in (4990, 3000, 1024, 2047, 4999):
        page = await provider.iterrows(dataset, start, 3)
        assert page.data == expected[start : start + 3], start
        assert page.has_more == (start + 3 < 5000)
    assert provider.indexes.builds == 1

    expected = _tricky_csv(path, 4000)
    page = await provider.iterrows(dataset, 3998, 5)
    assert page.data == expected[3998:] and not page.has_more
    assert provider.indexes.builds == 2


async def test_a_column_whose_type_changes_past_the_first_block_still_reads(tmp_path: Path) -> None:
    path = tmp_path / "drift.csv"
    rows = [{"answer": str(i)} for i in range(400_000)] + [{"answer": "Paris"}]
    path.write_text("answer\n" + "".join(r["answer"] + "\n" for r in rows))
    provider = await _provider(tmp_path)
    dataset = _dataset(_uri(path))
    await provider.register_dataset(dataset)
    assert (await provider.iterrows(dataset, 0, 1)).data == [{"answer": 0}]
    assert (await provider.iterrows(dataset, 400_000, 5)).data == [{"answer": "Paris"}]


@pytest.mark.parametrize(
    "uri, words",
    [
        ("https://example.com/data.csv", ["https://", "POST /v1/files"]),
        ("huggingface://datasets/x/y?split=train", ["remote::huggingface"]),
        ("s3://bucket/x.csv", ["'s3'"]),
        ("/nonexistent/qa.csv", ["does not exist"]),
        ("data:image/png;base64,AAAA", ["image/png"]),
        ("files://file-abc", ["no files provider"]),
    ],
)
async def test_a_source_it_cannot_read_is_a_400_naming_the_field(tmp_path: Path, uri: str, words) -> None:
    provider = await _provider(tmp_path)
    with pytest.raises(BadRequestError) as info:
        await provider.register_dataset(_dataset({"type": "uri", "uri": uri}))
    assert info.value.param == "source.uri"
    for word in words:
        assert word in info.value.message


async def test_an_unknown_extension_or_a_broken_file_is_a_400(tmp_path: Path) -> None:
    provider = await _provider(tmp_path)
    odd = tmp_path / "rows.txt"
    odd.write_text("a\n1\n")
    with pytest.raises(BadRequestError, match=r"metadata\.format"):
        await provider.register_dataset(_dataset(_uri(odd)))
    await provider.register_dataset(_dataset(_uri(odd), format="csv"))  # told the format: fine
    broken = tmp_path / "broken.jsonl"
    broken.write_text("{not json}\n")
    with pytest.raises(BadRequestError, match="line 1 is not JSON"):
        await provider.register_dataset(_dataset(_uri(broken)))


class _Table:
    """The one thing the router asks its routing table: the dataset and its provider."""

    def __init__(self, dataset: Dataset, provider: LocalFSDatasetIO) -> None:
        self.entry = (dataset, provider)

    async def resolve(self, dataset_id: str) -> tuple[Dataset, LocalFSDatasetIO]:
        return self.entry


async def test_the_router_caps_a_page_and_refuses_every_row_of_a_long_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lamina.apis.datasets import IterRowsRequest
    from lamina.routers import datasetio

    monkeypatch.setattr(datasetio, "MAX_PAGE_ROWS", 10)
    provider = await _provider(tmp_path)
    dataset = _dataset(_uri(_write(tmp_path, "jsonl")))
    await provider.register_dataset(dataset)
    router = datasetio.DatasetIORouter(_Table(dataset, provider))

    capped = await router.iterrows(IterRowsRequest(dataset_id="ds", limit=50))
    assert capped.data == ROWS[:10] and capped.has_more
    tail = await router.iterrows(IterRowsRequest(dataset_id="ds", start_index=15, limit=-1))
    assert tail.data == ROWS[15:] and not tail.has_more  # 10 rows: every row fits
    with pytest.raises(BadRequestError) as info:
        await router.iterrows(IterRowsRequest(dataset_id="ds"))
    assert info.value.param == "limit" and "start_index" in info.value.message
    pages = [page async for page in router.pages("ds", page_rows=7)]
    assert [len(p) for p in pages] == [7, 7, 7, 4] and [r for p in pages for r in p] == ROWS


async def test_a_deep_page_does_not_parse_the_rows_before_it(tmp_path: Path) -> None:
    """Once indexed, a deep page is parsed from the nearest indexed row: garbage written over the top
    of the file (same size, same mtime, so the index still stands) does not reach it."""
    import os

    path = tmp_path / "tricky.csv"
    expected = _tricky_csv(path, 5000)
    provider = await _provider(tmp_path)
    dataset = _dataset(_uri(path))
    await provider.register_dataset(dataset)
    assert (await provider.iterrows(dataset, 4000, 2)).data == expected[4000:4002]  # builds the index
    stat = path.stat()
    garbage = path.read_bytes()
    path.write_bytes(garbage[:20] + b'"' * 20_000 + garbage[20_020:])  # an unclosed quote at the top
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (await provider.iterrows(dataset, 4500, 3)).data == expected[4500:4503]
    assert provider.indexes.builds == 1
