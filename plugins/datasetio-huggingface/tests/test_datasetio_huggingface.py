"""remote::huggingface in process, on the real ``datasets`` library: local builders and directories
offline, paging from the Arrow cache, appended rows across a restart, and a hub dataset whose hub does
not answer failing at once (a closed loopback port stands for the hub: no test leaves the machine)."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lamina.apis.datasets import Dataset
from lamina.errors import BadRequestError, UpstreamError
from lamina.providers.base import ProviderContext
from lamina.specs import Api
from lamina.testing.processes import free_port
from lamina_datasetio_huggingface.config import HuggingfaceDatasetIOConfig
from lamina_datasetio_huggingface.provider import HuggingfaceDatasetIO, parse_uri

ROWS = [{"question": f"q{i}", "answer": f"a{i}", "n": i} for i in range(30)]
_OPEN: list[HuggingfaceDatasetIO] = []


@pytest.fixture(autouse=True)
async def _close_providers(monkeypatch: pytest.MonkeyPatch) -> Any:
    # Nothing here may reach a real hub: the hub is a closed port on loopback.
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    yield
    while _OPEN:
        await _OPEN.pop().shutdown()


async def _provider(tmp_path: Path) -> HuggingfaceDatasetIO:
    context = ProviderContext(
        api=Api.datasetio,
        provider_id="huggingface",
        provider_type="remote::huggingface",
        state_dir=tmp_path / "state",
    )
    provider = HuggingfaceDatasetIO(HuggingfaceDatasetIOConfig(), context)
    await provider.initialize()
    _OPEN.append(provider)
    return provider


def _dataset(uri: str, identifier: str = "ds") -> Dataset:
    return Dataset(
        identifier=identifier,
        provider_id="huggingface",
        purpose="eval/question-answer",
        source={"type": "uri", "uri": uri},
    )


def test_uris_parse_as_llama_stack_writes_them() -> None:
    assert parse_uri("huggingface://datasets/llamastack/simpleqa?split=train") == (
        "llamastack/simpleqa",
        {"split": "train"},
    )
    assert parse_uri("huggingface://csv?data_files=/d/x.csv&split=train") == (
        "csv",
        {"data_files": "/d/x.csv", "split": "train"},
    )
    assert parse_uri("huggingface:///data/dir?split=test") == ("/data/dir", {"split": "test"})


async def test_a_local_csv_pages_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    # The library's S3 download counter, on by default, is what would look a host up here.
    monkeypatch.setattr(datasets.config, "HF_UPDATE_DOWNLOAD_COUNTS", True)
    lookups: list[str] = []
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in ("127.0.0.1", "localhost", "::1"):
            lookups.append(str(host))
            raise socket.gaierror(f"test: {host} is not looked up")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    path = tmp_path / "qa.csv"
    lines = "".join(f"{r['question']},{r['answer']},{r['n']}\n" for r in ROWS)
    path.write_text("question,answer,n\n" + lines)
    provider = await _provider(tmp_path)
    dataset = _dataset(f"huggingface://csv?data_files={path}&split=train")
    started = time.monotonic()
    await provider.register_dataset(dataset)
    assert time.monotonic() - started < 20  # no network wait (the library's S3 ping is off)
    page = await provider.iterrows(dataset, 25, 10)
    assert page.data == ROWS[25:] and not page.has_more
    first = await provider.iterrows(dataset, 0, 2)
    assert first.data == ROWS[:2] and first.has_more
    assert (await provider.iterrows(dataset, 99, None)).data == []
    assert lookups == []


async def test_a_local_directory_and_its_splits(tmp_path: Path) -> None:
    directory = tmp_path / "my_dataset"
    directory.mkdir()
    pq.write_table(pa.Table.from_pylist(ROWS[:20]), directory / "train.parquet")
    pq.write_table(pa.Table.from_pylist(ROWS[20:]), directory / "test.parquet")
    provider = await _provider(tmp_path)
    test_split = _dataset(f"huggingface://{directory}?split=test")
    await provider.register_dataset(test_split)
    assert (await provider.iterrows(test_split, 0, None)).data == ROWS[20:]
    with pytest.raises(BadRequestError) as info:
        await provider.register_dataset(_dataset(f"huggingface://{directory}", identifier="both"))
    assert "split" in info.value.message and "train" in info.value.message and "test" in info.value.message


async def test_appended_rows_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "qa.jsonl"
    qa = [{"question": r["question"], "answer": r["answer"]} for r in ROWS[:3]]
    path.write_text("".join(json.dumps(r) + "\n" for r in qa))
    provider = await _provider(tmp_path)
    dataset = _dataset(f"huggingface://json?data_files={path}&split=train")
    await provider.register_dataset(dataset)
    await provider.append_rows(dataset, [{"question": "late", "answer": "x"}])
    await _OPEN.pop().shutdown()
    restarted = await _provider(tmp_path)
    await restarted.register_dataset(dataset)
    page = await restarted.iterrows(dataset, 2, 5)
    assert page.data == [{"question": "q2", "answer": "a2"}, {"question": "late", "answer": "x"}]
    assert not page.has_more


async def test_a_hub_dataset_whose_hub_does_not_answer_fails_at_once(tmp_path: Path) -> None:
    provider = await _provider(tmp_path)
    dataset = _dataset("huggingface://datasets/llamastack/simpleqa?split=train", identifier="simpleqa")
    await provider.register_dataset(dataset)  # as in Llama Stack: the hub is not asked at registration
    started = time.monotonic()
    with pytest.raises(UpstreamError) as info:
        await provider.iterrows(dataset, 0, 10)
    assert time.monotonic() - started < 10  # the library alone waits ~24 s
    message = info.value.message
    assert "llamastack/simpleqa" in message and "simpleqa" in message and "unreachable" in message


async def test_sources_it_cannot_read_are_400s(tmp_path: Path) -> None:
    provider = await _provider(tmp_path)
    with pytest.raises(BadRequestError) as info:
        await provider.register_dataset(_dataset("/data/qa.csv"))
    assert info.value.param == "source.uri" and "inline::localfs" in info.value.message
    with pytest.raises(BadRequestError) as info:
        await provider.register_dataset(
            _dataset(f"huggingface://csv?data_files={tmp_path}/none.csv&split=train")
        )
    assert info.value.param == "source.uri" and "none.csv" in info.value.message
