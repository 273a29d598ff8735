"""OpenAI vector stores through a real ``lamina run`` (inline::sentence-transformers, inline::faiss,
inline::localfs), driven by the OpenAI SDK and llama-stack-client 0.2.12.

One server serves the module; the last test restarts it and checks that stores, files and chunks
are all still there.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from llama_stack_client import LlamaStackClient
from openai import OpenAI

from lamina.testing.pdfs import make_pdf
from lamina.testing.processes import ServerProcess, lamina_server, pid_alive

pytestmark = pytest.mark.e2e

PDF_PAGES = [
    [
        "Lighthouse operations manual.",
        "The keeper of the Skerryvore lighthouse polishes the great Fresnel lens every evening",
        "and trims the wick before sunset so the beam reaches ships twenty miles out at sea.",
    ],
    ["Appendix: the fog signal is sounded every thirty seconds while visibility is poor."],
]
MARKDOWN = """# Sourdough baking notes

## Starter
Feed the sourdough starter with equal weights of rye flour and water, twice a day.

## Baking
Bake the loaf in a preheated cast iron pot at 250 degrees for twenty minutes with the lid on.
"""
TOPICS = {  # filename -> (text, attributes)
    "volcano.txt": (
        "Mount Etna erupts lava fountains over Sicily.",
        {"topic": "geology", "year": 2019, "ok": True},
    ),
    "glacier.txt": (
        "Glaciers carve U-shaped valleys as they slowly move.",
        {"topic": "geology", "year": 2023},
    ),
    "comet.txt": (
        "A comet grows a glowing tail when it nears the Sun.",
        {"topic": "astronomy", "year": 2021},
    ),
}


def run_config(root: Path) -> dict[str, Any]:
    return {
        "version": 2,
        "image_name": "vector-stores-e2e",
        "providers": {
            "inference": [{"provider_id": "st", "provider_type": "inline::sentence-transformers"}],
            "vector_io": [
                {"provider_id": "faiss", "provider_type": "inline::faiss", "config": {"index": "flat"}}
            ],
            "files": [
                {
                    "provider_id": "localfs",
                    "provider_type": "inline::localfs",
                    "config": {"storage_dir": str(root / "files")},
                }
            ],
        },
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("vector-stores")
    proc = lamina_server(run_config(root), root)
    proc.ready_timeout = 120
    with proc:  # starts it once; stopped when the module is done
        yield proc


@pytest.fixture(scope="module")
def oa(server: ServerProcess) -> OpenAI:
    return OpenAI(base_url=server.url + "/v1/openai/v1", api_key="none", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def oa_v1(server: ServerProcess) -> OpenAI:
    """The OpenAI SDK on /v1: the /v1/vector_stores aliases."""
    return OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def state() -> dict[str, Any]:
    """Ids shared between the tests of the module (the restart test checks them)."""
    return {}


def upload(oa: OpenAI, name: str, data: bytes) -> str:
    return oa.files.create(file=(name, data), purpose="assistants").id


def wait_done(oa: OpenAI, vs_id: str, file_id: str, timeout: float = 180) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        f = oa.vector_stores.files.retrieve(file_id, vector_store_id=vs_id)
        if f.status != "in_progress":
            return f
        time.sleep(0.2)
    raise AssertionError(f"{file_id} still in_progress after {timeout}s")


def search(oa: OpenAI, vs_id: str, query: str, **kw: Any) -> list[Any]:
    return list(oa.vector_stores.search(vs_id, query=query, **kw).data)


def test_create_list_retrieve_update_delete(oa: OpenAI, oa_v1: OpenAI) -> None:
    a = oa.vector_stores.create(name="alpha", metadata={"team": "search"})
    assert a.id.startswith("vs_") and a.object == "vector_store" and a.status == "completed"
    assert a.name == "alpha" and a.metadata == {"team": "search"} and a.usage_bytes == 0
    assert a.file_counts.total == 0 and a.expires_after is None and a.expires_at is None
    b = oa_v1.vector_stores.create(name="beta", expires_after={"anchor": "last_active_at", "days": 2})
    assert b.expires_at == b.last_active_at + 2 * 86400

    listed = [s.id for s in oa.vector_stores.list(limit=100)]
    assert listed.index(b.id) < listed.index(a.id), "newest first"
    asc = [s.id for s in oa.vector_stores.list(order="asc", limit=100)]
    assert asc.index(a.id) < asc.index(b.id)
    page = oa.vector_stores.list(limit=1, order="asc", after=a.id)
    assert [s.id for s in page.data] == [asc[asc.index(a.id) + 1]]

    got = oa_v1.vector_stores.retrieve(a.id)
    assert got.id == a.id and got.name == "alpha"
    updated = oa.vector_stores.update(a.id, name="alpha2", metadata={"v": "2"})
    assert updated.name == "alpha2" and updated.metadata == {"v": "2"}
    cleared = oa.vector_stores.update(b.id, expires_after=None)
    assert cleared.expires_after is None and cleared.expires_at is None and cleared.name == "beta"

    # The backing vector DB is registered under the same id, and goes only with its store.
    root = f"{oa.base_url}".replace("/v1/openai/v1/", "")
    assert httpx.get(f"{root}/v1/vector-dbs/{a.id}").status_code == 200
    refused = httpx.delete(f"{root}/v1/vector-dbs/{a.id}")
    assert refused.status_code == 409 and "delete the vector store instead" in refused.json()["detail"]
    assert oa.vector_stores.retrieve(a.id).id == a.id
    for vs in (a, b):
        deleted = oa.vector_stores.delete(vs.id)
        assert deleted.deleted and deleted.id == vs.id
    with pytest.raises(openai.NotFoundError):
        oa.vector_stores.retrieve(a.id)
    assert (
        httpx.get(f"{oa.base_url}".replace("/v1/openai/v1/", "") + f"/v1/vector-dbs/{a.id}").status_code
        == 404
    )


def test_pdf_and_markdown_are_ingested_and_searchable(oa: OpenAI, state: dict[str, Any]) -> None:
    pdf_id = upload(oa, "lighthouse.pdf", make_pdf(["\n".join(page) for page in PDF_PAGES]))
    md_id = upload(oa, "sourdough.md", MARKDOWN.encode())
    vs = oa.vector_stores.create(name="docs", file_ids=[pdf_id])
    assert vs.file_counts.in_progress + vs.file_counts.completed == 1
    attached = oa.vector_stores.files.create(
        vector_store_id=vs.id, file_id=md_id, attributes={"kind": "recipe", "stars": 5}
    )
    assert attached.status == "completed" and attached.vector_store_id == vs.id  # it waited
    assert attached.attributes == {"kind": "recipe", "stars": 5}
    for fid in (pdf_id, md_id):
        done = wait_done(oa, vs.id, fid)
        assert done.status == "completed", done.last_error
        assert done.usage_bytes > 0
    store = oa.vector_stores.retrieve(vs.id)
    assert store.file_counts.completed == 2 and store.file_counts.total == 2 and store.status == "completed"
    assert store.usage_bytes > 0

    hits = search(oa, vs.id, "who cleans the lens of the lighthouse?")
    assert hits[0].file_id == pdf_id and hits[0].filename == "lighthouse.pdf"
    assert "Fresnel lens" in hits[0].content[0].text and hits[0].content[0].type == "text"
    hits = search(oa, vs.id, "how hot should the oven be for bread", max_num_results=1)
    assert len(hits) == 1 and hits[0].file_id == md_id and hits[0].filename == "sourdough.md"
    assert "250 degrees" in hits[0].content[0].text and hits[0].attributes == {"kind": "recipe", "stars": 5}
    # a list query is joined; ranking options are accepted
    hits = search(oa, vs.id, ["fog", "signal"], ranking_options={"ranker": "auto", "score_threshold": 0.1})
    assert hits and hits[0].file_id == pdf_id and all(h.score >= 0.1 for h in hits)

    content = list(oa.vector_stores.files.content(md_id, vector_store_id=vs.id))
    assert content and "rye flour" in " ".join(c.text for c in content)
    raw = httpx.get(f"{oa.base_url}vector_stores/{vs.id}/files/{md_id}/content").json()
    assert (
        raw["file_id"] == md_id
        and raw["filename"] == "sourdough.md"
        and raw["attributes"]["kind"] == "recipe"
    )

    files = oa.vector_stores.files.list(vector_store_id=vs.id)
    assert {f.id for f in files.data} == {pdf_id, md_id}
    assert [f.id for f in oa.vector_stores.files.list(vector_store_id=vs.id, filter="failed").data] == []
    state.update(docs=vs.id, pdf=pdf_id, md=md_id)


def test_attribute_filters(oa: OpenAI, state: dict[str, Any]) -> None:
    vs = oa.vector_stores.create(name="topics", chunking_strategy={"type": "static", "static": {
        "max_chunk_size_tokens": 100, "chunk_overlap_tokens": 20}})  # fmt: skip
    ids = {}
    for name, (text, attributes) in TOPICS.items():
        ids[name] = upload(oa, name, text.encode())
        oa.vector_stores.files.create(vector_store_id=vs.id, file_id=ids[name], attributes=attributes)
    for fid in ids.values():
        f = wait_done(oa, vs.id, fid)
        assert f.status == "completed", f.last_error
    q = "natural phenomena"

    def names(flt: dict[str, Any]) -> set[str]:
        return {
            h.filename for h in search(oa, vs.id, q, filters=flt, ranking_options={"score_threshold": -1})
        }

    assert names({"type": "eq", "key": "topic", "value": "geology"}) == {"volcano.txt", "glacier.txt"}
    assert names({"type": "ne", "key": "topic", "value": "geology"}) == {"comet.txt"}
    assert names({"type": "gt", "key": "year", "value": 2020}) == {"glacier.txt", "comet.txt"}
    assert names({"type": "lte", "key": "year", "value": 2021}) == {"volcano.txt", "comet.txt"}
    assert names({"type": "lt", "key": "year", "value": 2019}) == set()
    geology = {"type": "eq", "key": "topic", "value": "geology"}
    both = {"type": "and", "filters": [geology, {"type": "gte", "key": "year", "value": 2020}]}
    assert names(both) == {"glacier.txt"}
    astronomy = {"type": "eq", "key": "topic", "value": "astronomy"}
    either = {"type": "or", "filters": [astronomy, {"type": "eq", "key": "ok", "value": True}]}
    assert names(either) == {"comet.txt", "volcano.txt"}
    assert names({"type": "in", "key": "year", "value": [2019, 2023]}) == {"volcano.txt", "glacier.txt"}
    assert names({"type": "eq", "key": "missing", "value": "x"}) == set()

    # Updating attributes changes what filters see, at once.
    updated = oa.vector_stores.files.update(
        ids["comet.txt"], vector_store_id=vs.id, attributes={"topic": "geology", "year": 1999}
    )
    assert updated.attributes == {"topic": "geology", "year": 1999}
    assert names({"type": "eq", "key": "topic", "value": "geology"}) == set(TOPICS)
    state.update(topics=vs.id, comet=ids["comet.txt"])


def test_bad_files_fail_with_last_error(oa: OpenAI) -> None:
    vs = oa.vector_stores.create(name="bad")
    binary = upload(oa, "blob.bin", bytes(range(256)) * 8)
    empty = upload(oa, "empty.txt", b"   \n  ")
    for fid in (binary, empty, "file-doesnotexist"):
        oa.vector_stores.files.create(vector_store_id=vs.id, file_id=fid)
    errors = {}
    for fid in (binary, empty, "file-doesnotexist"):
        f = wait_done(oa, vs.id, fid)
        assert f.status == "failed" and f.last_error is not None and f.last_error.code == "server_error"
        errors[fid] = f.last_error.message
    assert "cannot extract text" in errors[binary]
    assert "no text" in errors[empty]
    assert "file-doesnotexist" in errors["file-doesnotexist"]
    store = oa.vector_stores.retrieve(vs.id)
    assert store.file_counts.failed == 3 and store.file_counts.total == 3 and store.usage_bytes == 0
    failed = oa.vector_stores.files.list(vector_store_id=vs.id, filter="failed")
    assert {f.id for f in failed.data} == {binary, empty, "file-doesnotexist"}
    oa.vector_stores.delete(vs.id)


def test_deleting_a_file_removes_its_chunks(oa: OpenAI) -> None:
    vs = oa.vector_stores.create(name="deletions")
    keep = upload(oa, "keep.txt", b"Penguins huddle together to survive the Antarctic winter.")
    drop = upload(oa, "drop.txt", b"The zyxomorphic manuscript was found in a monastery cellar.")
    for fid in (keep, drop):
        oa.vector_stores.files.create(vector_store_id=vs.id, file_id=fid)
        assert wait_done(oa, vs.id, fid).status == "completed"
    assert (
        search(oa, vs.id, "zyxomorphic manuscript", extra_body={"search_mode": "keyword"})[0].file_id == drop
    )
    deleted = oa.vector_stores.files.delete(drop, vector_store_id=vs.id)
    assert deleted.deleted and deleted.id == drop
    hits = search(oa, vs.id, "zyxomorphic manuscript monastery", ranking_options={"score_threshold": -1})
    assert hits and drop not in {h.file_id for h in hits}
    assert search(oa, vs.id, "zyxomorphic", extra_body={"search_mode": "keyword"}) == []
    # and the chunks are gone from the vector DB itself
    base = str(oa.base_url).replace("/v1/openai/v1/", "")
    body = {"vector_db_id": vs.id, "query": "zyxomorphic", "params": {"mode": "keyword", "max_chunks": 10}}
    chunks = httpx.post(base + "/v1/vector-io/query", json=body).json()["chunks"]
    assert chunks == []
    with pytest.raises(openai.NotFoundError):
        oa.vector_stores.files.retrieve(drop, vector_store_id=vs.id)
    store = oa.vector_stores.retrieve(vs.id)
    assert store.file_counts.total == 1 and store.file_counts.completed == 1
    oa.vector_stores.delete(vs.id)


def test_bad_input_is_a_4xx_naming_the_field(oa: OpenAI, state: dict[str, Any]) -> None:
    vs_id = state["docs"]
    with pytest.raises(openai.BadRequestError) as err:
        oa.vector_stores.search(vs_id, query="x", max_num_results=0)
    assert err.value.body["param"] == "max_num_results"
    with pytest.raises(openai.BadRequestError) as err:
        oa.vector_stores.search(vs_id, query="x", max_num_results=51)
    assert err.value.body["param"] == "max_num_results"
    with pytest.raises(openai.NotFoundError) as err:
        oa.vector_stores.search("vs_nope", query="x")
    assert err.value.body["param"] == "vector_store_id" and "vs_nope" in err.value.body["message"]
    with pytest.raises(openai.NotFoundError):
        oa.vector_stores.files.create(vector_store_id="vs_nope", file_id=state["md"])
    bad = {"type": "static", "static": {"max_chunk_size_tokens": 50, "chunk_overlap_tokens": 10}}
    with pytest.raises(openai.BadRequestError) as err:
        oa.vector_stores.files.create(vector_store_id=vs_id, file_id=state["md"], chunking_strategy=bad)
    assert err.value.body["param"] == "chunking_strategy"
    assert "chunking_strategy.static.max_chunk_size_tokens" in err.value.body["message"]
    over = {"type": "static", "static": {"max_chunk_size_tokens": 400, "chunk_overlap_tokens": 300}}
    with pytest.raises(openai.BadRequestError) as err:
        oa.vector_stores.create(name="x", chunking_strategy=over)
    assert "chunk_overlap_tokens" in err.value.body["message"]
    with pytest.raises(openai.BadRequestError) as err:
        oa.vector_stores.search(vs_id, query="x", filters={"type": "zz", "key": "a", "value": 1})
    assert err.value.body["param"] == "filters" and "filters.type" in err.value.body["message"]
    with pytest.raises(openai.BadRequestError) as err:
        oa.vector_stores.create(name="x", expires_after={"anchor": "created_at", "days": 1})
    assert err.value.body["param"].startswith("expires_after")
    with pytest.raises(openai.BadRequestError) as err:
        oa.vector_stores.create(name="x", extra_body={"embedding_model": "no-such-model"})
    assert err.value.body["param"] == "embedding_model"
    with pytest.raises(openai.BadRequestError) as err:
        oa.vector_stores.files.create(vector_store_id=vs_id, file_id=state["md"], attributes={"a": {"b": 1}})
    assert err.value.body["param"] == "attributes"
    with pytest.raises(openai.NotFoundError) as err:
        oa.vector_stores.files.retrieve("file-nope", vector_store_id=vs_id)
    assert err.value.body["param"] == "file_id"
    with pytest.raises(openai.BadRequestError) as err:
        oa.vector_stores.list(after="vs_nope")
    assert err.value.body["param"] == "after"


def test_llama_stack_client_retrieval(server: ServerProcess, oa: OpenAI, state: dict[str, Any]) -> None:
    ls = LlamaStackClient(base_url=server.url, max_retries=0, timeout=120)
    vs = ls.vector_stores.create(name="ls-store", embedding_model="all-MiniLM-L6-v2")
    assert vs.id.startswith("vs_") and vs.name == "ls-store"
    f = ls.vector_stores.files.create(vs.id, file_id=state["pdf"], attributes={"source": "manual"})
    assert f.status == "completed"  # llama-stack-client cannot poll: the attach waited
    assert wait_done(oa, vs.id, state["pdf"]).status == "completed"
    assert ls.vector_stores.retrieve(vs.id).file_counts.completed == 1
    found = ls.vector_stores.search(vs.id, query="fog signal interval", filters={
        "type": "eq", "key": "source", "value": "manual"})  # fmt: skip
    assert found.data[0].file_id == state["pdf"] and found.data[0].filename == "lighthouse.pdf"
    assert "thirty seconds" in found.data[0].content[0].text
    assert found.search_query == "fog signal interval"
    assert vs.id in {s.id for s in ls.vector_stores.list().data}
    ls.vector_stores.update(vs.id, name="ls-renamed")
    assert ls.vector_stores.retrieve(vs.id).name == "ls-renamed"
    assert ls.vector_stores.delete(vs.id).deleted


def test_restart_keeps_stores_files_and_chunks(
    server: ServerProcess, oa: OpenAI, state: dict[str, Any]
) -> None:
    before = oa.vector_stores.retrieve(state["docs"])
    files_before = {f.id: f for f in oa.vector_stores.files.list(vector_store_id=state["docs"]).data}
    # A file attached just before the stop is still in_progress (or done): either way it completes after.
    late = upload(oa, "late.txt", b"Carrier pigeons can find their way home over hundreds of kilometres.")
    oa.vector_stores.files.create(vector_store_id=state["docs"], file_id=late)
    old_pid = server.pid
    server.restart()
    # A new process answers now; the one that held the state before is gone.
    assert server.pid != old_pid and old_pid is not None and not pid_alive(old_pid)
    after = oa.vector_stores.retrieve(state["docs"])
    assert after.created_at == before.created_at and after.name == before.name
    files_after = {f.id: f for f in oa.vector_stores.files.list(vector_store_id=state["docs"]).data}
    assert set(files_after) == {*files_before, late}
    assert files_after[state["md"]].attributes == files_before[state["md"]].attributes
    assert wait_done(oa, state["docs"], late).status == "completed"
    hits = search(oa, state["docs"], "who cleans the lens of the lighthouse?")
    assert hits[0].file_id == state["pdf"] and hits[0].filename == "lighthouse.pdf"
    assert search(oa, state["docs"], "homing birds navigation", max_num_results=1)[0].file_id == late
    comet = oa.vector_stores.files.retrieve(state["comet"], vector_store_id=state["topics"])
    assert comet.attributes == {"topic": "geology", "year": 1999}
    final = oa.vector_stores.retrieve(state["docs"])
    assert final.file_counts.completed == 3 and final.usage_bytes > before.usage_bytes
