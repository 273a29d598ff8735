"""Retrieval: each Vector IO provider called directly and through ``lamina run`` (issue 4).

``python -m bench retrieval [--chunks N] [--queries N] [--providers ...] [--no-doc]``
(``hatch run bench retrieval``):

* data: ``--chunks`` deterministic 384-dim unit vectors in clusters (numpy, fixed seed), each with a
  short text of words from a synthetic vocabulary (a few words of its cluster's topic, the rest
  Zipf-distributed common words), so keyword queries are meaningful. Queries are perturbed copies
  of stored vectors; recall@10 is measured against exact (numpy) search.
* direct: per provider, its library entry point in this process (faiss: the provider class;
  sqlite-vec, pgvector, chromadb: their ``open_for_bench``). Insert every chunk in batches of 1000
  (chunks/s; building the chunk objects is not timed), then ``--queries`` vector queries (k=10) and
  as many keyword queries, one at a time (p50/p99).
* through the API: a real ``lamina run`` (quiet) with the provider under ``vector_io`` and
  ``inline::sentence-transformers`` (all-MiniLM-L6-v2 on ONNX) for embeddings. Insert with
  precomputed embeddings, 1000 chunks per ``POST /v1/vector-io/insert``; then per query, in turn:
  ``POST /v1/inference/embeddings`` of the query text alone, ``POST /v1/vector-io/query`` in vector
  mode (which embeds that same text) and in keyword mode. API minus embedding = the vector query's
  p50 less the embeddings call's p50: the vector store's and the router's share.

The direct side of a provider runs and is closed before its ``lamina run`` starts. pgvector runs on
a throwaway PostgreSQL with pgvector (``lamina.testing.pgvector``), chromadb on ``chroma run``; a
provider whose backend cannot start is reported as skipped, with the reason.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shlex
import shutil
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.report import console_table, fmt_ms, fmt_num, markdown_table, update_doc

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
DIM = 384
K = 10
BATCH = 1000
WARMUP = 5
SEED = 20250404
EMBEDDER = "all-MiniLM-L6-v2"
PROVIDERS = ["faiss", "sqlite-vec", "pgvector", "chromadb"]
PROVIDER_TYPES = {
    "faiss": "inline::faiss",
    "sqlite-vec": "inline::sqlite-vec",
    "pgvector": "remote::pgvector",
    "chromadb": "remote::chromadb",
}
TARGET_MS = 5.0  # inline faiss vector query through the API, p50, at 100k chunks


class Skip(Exception):
    """A provider's backend cannot start here; the message says why."""


# -- data ------------------------------------------------------------------------------------------

_SYLLABLES = (
    "ka lo mi ren tas vo qui ber dun sel ar po ni gal tor ux fen ha jo lek mar nup os pri sul "
    "tek um vin wex yor zal bri cro dra eth fli gro"
).split()


@dataclass
class Data:
    vectors: np.ndarray  # (n, DIM) float32, unit rows
    texts: list[str]
    queries: np.ndarray  # (q, DIM) float32, unit rows
    query_texts: list[str]  # the source chunk's text: what the API embeds in vector mode
    keyword_texts: list[str]
    exact: np.ndarray  # (q, K) the exact top-K chunk indexes of each query
    clusters: int


def _vocabulary(rng: np.random.Generator, size: int) -> list[str]:
    words: set[str] = set()
    while len(words) < size:
        n = int(rng.integers(2, 4))
        words.add("".join(_SYLLABLES[i] for i in rng.integers(0, len(_SYLLABLES), n)))
    out = sorted(words)
    rng.shuffle(out)
    return out


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def make_data(n: int, q: int, seed: int = SEED) -> Data:
    rng = np.random.default_rng(seed)
    clusters = max(8, n // 500)
    centers = _unit(rng.standard_normal((clusters, DIM)))
    labels = rng.integers(0, clusters, n)
    noise = rng.standard_normal((n, DIM)).astype(np.float32) * (0.8 / np.sqrt(DIM))
    vectors = _unit(centers[labels] + noise)

    vocab = _vocabulary(rng, 2000 + 8 * clusters)
    common, topical = vocab[:2000], vocab[2000:]
    zipf = 1.0 / np.arange(1, len(common) + 1)
    general = rng.choice(len(common), size=(n, 7), p=zipf / zipf.sum())
    topic = rng.integers(0, 8, size=(n, 3))
    texts = [
        " ".join([topical[8 * labels[i] + t] for t in topic[i]] + [common[w] for w in general[i]])
        for i in range(n)
    ]

    src = rng.choice(n, size=q, replace=q > n)
    perturb = rng.standard_normal((q, DIM)).astype(np.float32) * (0.3 / np.sqrt(DIM))
    queries = _unit(vectors[src] + perturb)
    keyword_texts = []
    for i in src:
        words = texts[i].split()
        keyword_texts.append(
            f"{words[int(rng.integers(0, 3))]} {topical[8 * labels[i] + int(rng.integers(0, 8))]} {words[3]}"
        )

    exact = np.empty((q, K), dtype=np.int64)
    for lo in range(0, q, 64):
        sims = queries[lo : lo + 64] @ vectors.T
        top = np.argpartition(-sims, K, axis=1)[:, :K]
        order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1)
        exact[lo : lo + 64] = np.take_along_axis(top, order, axis=1)
    return Data(vectors, texts, queries, [texts[i] for i in src], keyword_texts, exact, clusters)


def chunk_id(i: int) -> str:
    return f"c{i}"


def chunk_objects(data: Data, lo: int, hi: int) -> list[Any]:
    from lamina.apis.vector_io import Chunk

    return [
        Chunk(
            content=data.texts[i],
            chunk_id=chunk_id(i),
            metadata={"document_id": f"doc-{i // 8}"},
            embedding=data.vectors[i].tolist(),
        )
        for i in range(lo, hi)
    ]


def insert_body(data: Data, vector_db_id: str, lo: int, hi: int) -> bytes:
    import orjson

    chunks = [
        {
            "content": data.texts[i],
            "chunk_id": chunk_id(i),
            "metadata": {"document_id": f"doc-{i // 8}"},
            "embedding": data.vectors[i],
        }
        for i in range(lo, hi)
    ]
    return orjson.dumps({"vector_db_id": vector_db_id, "chunks": chunks}, option=orjson.OPT_SERIALIZE_NUMPY)


def recall(data: Data, results: list[list[str]]) -> float:
    hits = [len({int(c[1:]) for c in ids} & set(data.exact[j].tolist())) for j, ids in enumerate(results)]
    return sum(hits) / (K * len(results)) if results else float("nan")


# -- results ---------------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


@dataclass
class Result:
    provider: str
    skipped: str | None = None
    errors: list[str] = field(default_factory=list)
    insert_direct: float | None = None  # chunks/s
    insert_api: float | None = None
    vec_direct: list[float] = field(default_factory=list)  # ms
    kw_direct: list[float] = field(default_factory=list)
    vec_api: list[float] = field(default_factory=list)
    emb_api: list[float] = field(default_factory=list)
    kw_api: list[float] = field(default_factory=list)
    recall: float | None = None
    seconds: dict[str, float] = field(default_factory=dict)  # phase -> wall seconds

    @property
    def api_minus_emb(self) -> float | None:
        a, b = pct(self.vec_api, 50), pct(self.emb_api, 50)
        return a - b if a is not None and b is not None else None


# -- backends --------------------------------------------------------------------------------------


def _chroma_executable() -> str | None:
    local = Path(sys.executable).parent / "chroma"
    return str(local) if local.exists() else shutil.which("chroma")


def start_backend(name: str, work: Path, stack: Any) -> dict[str, Any]:
    """Start what ``name`` needs (nothing for the inline ones); stopped when ``stack`` closes."""
    if name == "pgvector":
        try:
            from lamina.testing.pgvector import start_pgvector

            # its own temp dir: the postgres user must be able to enter it (mode 0755)
            base = Path(tempfile.mkdtemp(prefix="lamina-bench-pgvector-"))
            stack.callback(shutil.rmtree, base, ignore_errors=True)
            os.chmod(base, 0o755)
            server = start_pgvector(base)
        except (ImportError, FileNotFoundError, RuntimeError, OSError) as exc:
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            why = " ".join(lines[:1] + lines[-1:]) if len(lines) > 1 else "".join(lines)
            raise Skip(f"PostgreSQL with pgvector could not start: {why[:300]}") from exc
        stack.callback(server.stop)
        return {"server": server, "dsn": server.dsn()}
    if name == "chromadb":
        from lamina.testing.processes import ServerProcess, free_port

        exe = _chroma_executable()
        if exe is None:
            raise Skip("the `chroma` command is missing (pip install chromadb)")
        port = free_port()
        argv = [exe, "run", "--path", str(work / "chroma-data"), "--host", "127.0.0.1", "--port", str(port)]
        server = ServerProcess(
            argv,
            port,
            log_path=work / "chroma.log",
            env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
            ready_path="/api/v2/heartbeat",
            ready_timeout=60.0,
        )
        try:
            server.start()
        except (RuntimeError, OSError) as exc:
            server.stop()
            raise Skip(f"`chroma run` could not start: {str(exc).splitlines()[0]}") from exc
        stack.callback(server.stop)
        return {"url": server.url}
    return {}


# -- direct ----------------------------------------------------------------------------------------


class Direct:
    """One provider's library entry point: insert chunk objects, vector and keyword queries."""

    def __init__(self, provider: Any, vector_db: Any = None, index: Any = None) -> None:
        self.provider, self.vector_db, self.index = provider, vector_db, index

    async def insert(self, chunks: list[Any]) -> None:
        if self.index is not None:
            self.index.insert_chunks(chunks)  # sqlite-vec: runs on its writer thread; we wait
        else:
            await self.provider.insert_chunks(self.vector_db, chunks)

    async def vector(self, embedding: list[float]) -> list[str]:
        if self.index is not None:
            response = await self.index.aquery_vector(embedding, K)
        else:
            from lamina.apis.vector_io import ChunkQuery

            query = ChunkQuery(mode="vector", k=K, embedding=embedding)
            response = await self.provider.query_chunks(self.vector_db, query)
        return [c.chunk_id for c in response.chunks]

    async def keyword(self, text: str) -> list[str]:
        if self.index is not None:
            response = await self.index.aquery_keyword(text, K)
        else:
            from lamina.apis.vector_io import ChunkQuery

            response = await self.provider.query_chunks(
                self.vector_db, ChunkQuery(mode="keyword", k=K, text=text)
            )
        return [c.chunk_id for c in response.chunks]


async def open_direct(name: str, backend: dict[str, Any], work: Path, stack: AsyncExitStack) -> Direct:
    from lamina.apis.vector_io import VectorDB

    if name == "faiss":
        from lamina.providers import ProviderContext
        from lamina.specs import Api
        from lamina_faiss.config import FaissVectorIOConfig
        from lamina_faiss.provider import create_provider

        context = ProviderContext(
            api=Api.vector_io,
            provider_id="faiss",
            provider_type="inline::faiss",
            state_dir=work / "faiss-direct",
        )
        provider = await create_provider(FaissVectorIOConfig.model_validate({}), {}, context)
        await provider.initialize()
        stack.push_async_callback(provider.shutdown)
        vdb = VectorDB(
            identifier="bench", provider_id="faiss", embedding_model=EMBEDDER, embedding_dimension=DIM
        )
        await provider.register_vector_db(vdb)
        return Direct(provider, vdb)
    if name == "sqlite-vec":
        from lamina_sqlite_vec import open_for_bench

        index = open_for_bench(work / "sqlite-vec-direct.db", DIM)
        stack.callback(index.close)
        return Direct(None, index=index)
    if name == "pgvector":
        from lamina_pgvector import open_for_bench

        provider, vdb = await stack.enter_async_context(open_for_bench(backend["dsn"], DIM))

        async def drop() -> None:  # keep the database small for the API run
            await provider.unregister_vector_db(vdb)

        stack.push_async_callback(drop)
        return Direct(provider, vdb)
    if name == "chromadb":
        from lamina_chromadb import open_for_bench

        provider, vdb = await open_for_bench(backend["url"], DIM)
        stack.push_async_callback(provider.shutdown)
        stack.push_async_callback(provider.unregister_vector_db, vdb)
        return Direct(provider, vdb)
    raise ValueError(name)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def run_direct(name: str, backend: dict[str, Any], work: Path, data: Data, result: Result) -> None:
    async with AsyncExitStack() as stack:
        direct = await open_direct(name, backend, work, stack)
        n = len(data.vectors)
        spent = 0.0
        for lo in range(0, n, BATCH):
            chunks = chunk_objects(data, lo, min(n, lo + BATCH))
            started = time.perf_counter()
            await direct.insert(chunks)
            spent += time.perf_counter() - started
        result.insert_direct = n / spent
        _log(f"{name}: direct insert {n:,} chunks in {spent:.1f} s ({result.insert_direct:,.0f} chunks/s)")

        queries = [v.tolist() for v in data.queries]
        for j in range(min(WARMUP, len(queries))):
            await direct.vector(queries[j])
            await direct.keyword(data.keyword_texts[j])
        found = []
        for vector in queries:
            started = time.perf_counter()
            ids = await direct.vector(vector)
            result.vec_direct.append(1000 * (time.perf_counter() - started))
            found.append(ids)
        result.recall = recall(data, found)
        for text in data.keyword_texts:
            started = time.perf_counter()
            await direct.keyword(text)
            result.kw_direct.append(1000 * (time.perf_counter() - started))
        _log(
            f"{name}: direct vector p50 {fmt_ms(pct(result.vec_direct, 50))} ms, keyword p50 "
            f"{fmt_ms(pct(result.kw_direct, 50))} ms, recall@10 {result.recall:.3f}"
        )


# -- through the API -------------------------------------------------------------------------------


def run_config(name: str, backend: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if name == "pgvector":
        pg = backend["server"]
        config = {"host": pg.host, "port": pg.port, "db": pg.db, "user": pg.user, "password": None}
    elif name == "chromadb":
        config = {"url": backend["url"]}
    return {
        "version": 2,
        "image_name": f"bench-retrieval-{name}",
        "apis": ["inference", "vector_io"],
        "providers": {
            "inference": [
                {"provider_id": "sentence-transformers", "provider_type": "inline::sentence-transformers"}
            ],
            "vector_io": [{"provider_id": name, "provider_type": PROVIDER_TYPES[name], "config": config}],
        },
    }


async def _post(session: Any, url: str, body: bytes) -> tuple[float, bytes]:
    """POST pre-encoded JSON; (milliseconds to the whole answer, its bytes)."""
    started = time.perf_counter()
    async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as resp:
        payload = await resp.read()
        elapsed = 1000 * (time.perf_counter() - started)
        if resp.status >= 400:
            raise RuntimeError(f"POST {url} -> {resp.status}: {payload[:300].decode(errors='replace')}")
    return elapsed, payload


async def run_api(name: str, base: str, data: Data, result: Result) -> None:
    import aiohttp
    import orjson

    vdb = f"bench-api-{name}"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1800)) as session:
        register = {
            "vector_db_id": vdb,
            "embedding_model": EMBEDDER,
            "embedding_dimension": DIM,
            "provider_id": name,
        }
        await _post(session, f"{base}/v1/vector-dbs", orjson.dumps(register))
        n = len(data.vectors)
        spent = 0.0
        for lo in range(0, n, BATCH):
            body = insert_body(data, vdb, lo, min(n, lo + BATCH))
            spent += (await _post(session, f"{base}/v1/vector-io/insert", body))[0] / 1000
        result.insert_api = n / spent
        _log(f"{name}: API insert {n:,} chunks in {spent:.1f} s ({result.insert_api:,.0f} chunks/s)")

        def bodies(j: int) -> tuple[bytes, bytes, bytes]:
            text = data.query_texts[j]
            emb = {"model_id": EMBEDDER, "contents": [text]}
            vec = {"vector_db_id": vdb, "query": text, "params": {"max_chunks": K, "mode": "vector"}}
            kw = {
                "vector_db_id": vdb,
                "query": data.keyword_texts[j],
                "params": {"max_chunks": K, "mode": "keyword"},
            }
            return orjson.dumps(emb), orjson.dumps(vec), orjson.dumps(kw)

        q = len(data.queries)
        for j in range(min(WARMUP, q)):
            for path, body in zip(
                ("inference/embeddings", "vector-io/query", "vector-io/query"), bodies(j), strict=True
            ):
                await _post(session, f"{base}/v1/{path}", body)
        for j in range(q):
            emb, vec, kw = bodies(j)
            result.emb_api.append((await _post(session, f"{base}/v1/inference/embeddings", emb))[0])
            elapsed, payload = await _post(session, f"{base}/v1/vector-io/query", vec)
            if j == 0 and len(orjson.loads(payload)["chunks"]) != K:
                raise RuntimeError(f"vector query returned fewer than {K} chunks")
            result.vec_api.append(elapsed)
            result.kw_api.append((await _post(session, f"{base}/v1/vector-io/query", kw))[0])
        _log(
            f"{name}: API vector p50 {fmt_ms(pct(result.vec_api, 50))} ms (embeddings alone "
            f"{fmt_ms(pct(result.emb_api, 50))} ms), keyword p50 {fmt_ms(pct(result.kw_api, 50))} ms"
        )


# -- one provider ----------------------------------------------------------------------------------


def _error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def bench_provider(name: str, root: Path, data: Data) -> Result:
    from contextlib import ExitStack

    from lamina.testing.processes import lamina_server

    result = Result(name)
    work = root / name
    work.mkdir(parents=True)
    with ExitStack() as stack:
        started = time.perf_counter()
        try:
            backend = start_backend(name, work, stack)
        except Skip as exc:
            result.skipped = str(exc)
            _log(f"{name}: skipped: {exc}")
            return result
        result.seconds["backend start"] = time.perf_counter() - started

        started = time.perf_counter()
        try:
            asyncio.run(run_direct(name, backend, work, data, result))
        except Exception as exc:
            result.errors.append(f"direct: {_error(exc)}")
            _log(f"{name}: direct failed: {_error(exc)}")
        result.seconds["direct"] = time.perf_counter() - started

        started = time.perf_counter()
        server = lamina_server(
            run_config(name, backend), work / "lamina", env={"LAMINA_LOG_LEVEL": "warning"}, name="lamina"
        )
        try:
            server.start()
            try:
                asyncio.run(run_api(name, server.url, data, result))
            finally:
                server.stop(timeout=120)
        except Exception as exc:
            result.errors.append(f"API: {_error(exc)} (log: {server.log_path})")
            _log(f"{name}: API failed: {_error(exc)}\n{server.log_tail(15)}")
        result.seconds["API"] = time.perf_counter() - started
    return result


# -- report ----------------------------------------------------------------------------------------

HEADERS = [
    "provider",
    "insert direct (chunks/s)",
    "insert API (chunks/s)",
    "vector direct p50 / p99 (ms)",
    "vector API p50 / p99 (ms)",
    "embeddings alone p50 (ms)",
    "vector API − embedding p50 (ms)",
    "keyword direct p50 / p99 (ms)",
    "keyword API p50 / p99 (ms)",
    "recall@10",
]
RATIO_HEADERS = [
    "provider",
    "vector: API / direct (p50)",
    "vector, embedding excluded: (API − embedding) / direct",
    "keyword: API / direct (p50)",
    "insert: direct / API (chunks/s)",
]


def _pair(values: list[float]) -> str:
    return f"{fmt_ms(pct(values, 50))} / {fmt_ms(pct(values, 99))}" if values else "-"


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.1f}×" if a is not None and b else "-"


def rows(results: list[Result]) -> tuple[list[list[str]], list[list[str]]]:
    main, ratios = [], []
    for r in results:
        if r.skipped:
            main.append([f"{r.provider} (skipped)"] + ["-"] * (len(HEADERS) - 1))
            continue
        label = r.provider + (" (errors)" if r.errors else "")
        main.append(
            [
                label,
                fmt_num(r.insert_direct),
                fmt_num(r.insert_api),
                _pair(r.vec_direct),
                _pair(r.vec_api),
                fmt_ms(pct(r.emb_api, 50)),
                fmt_ms(r.api_minus_emb),
                _pair(r.kw_direct),
                _pair(r.kw_api),
                f"{r.recall:.3f}" if r.recall is not None else "-",
            ]
        )
        ratios.append(
            [
                label,
                _ratio(pct(r.vec_api, 50), pct(r.vec_direct, 50)),
                _ratio(r.api_minus_emb, pct(r.vec_direct, 50)),
                _ratio(pct(r.kw_api, 50), pct(r.kw_direct, 50)),
                _ratio(r.insert_direct, r.insert_api),
            ]
        )
    return main, ratios


def verdict(results: list[Result], chunks: int) -> str:
    faiss = next((r for r in results if r.provider == "faiss"), None)
    if faiss is None or not faiss.vec_api:
        reason = "not run" if faiss is None else (faiss.skipped or "; ".join(faiss.errors) or "no data")
        target = f"inline faiss vector query through the API p50 ≤ {TARGET_MS:g} ms"
        return f"**Target — {target}: not measured ({reason}).**"
    raw, excluded = pct(faiss.vec_api, 50), faiss.api_minus_emb
    assert raw is not None
    met = "MET" if raw <= TARGET_MS else "MISSED"
    scale = "" if chunks >= 100_000 else f" (at {chunks:,} chunks, not the 100k the target names)"
    return (
        f"**Target — inline faiss vector query through the API p50 ≤ {TARGET_MS:g} ms at 100k chunks: "
        f"{met}{scale}.** The verdict uses the raw API number, {raw:.2f} ms, which includes embedding the "
        f"query text with all-MiniLM-L6-v2 (the embeddings call alone: {fmt_ms(pct(faiss.emb_api, 50))} ms). "
        f"Without the embedding the API's vector query costs {fmt_ms(excluded)} ms "
        f"({'within' if excluded is not None and excluded <= TARGET_MS else 'over'} {TARGET_MS:g} ms); "
        f"the library alone {fmt_ms(pct(faiss.vec_direct, 50))} ms."
    )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def doc_text(
    args: argparse.Namespace, argv: list[str], results: list[Result], data: Data, load: float
) -> str:
    main_rows, ratio_rows = rows(results)
    cmd = shlex.join(["hatch", "run", "bench", "retrieval", *argv])
    lines = [
        "## Retrieval (issue 4)",
        "",
        f"Command: `{cmd}`. {args.chunks:,} chunks of {DIM} dims (unit vectors in {data.clusters} "
        f"clusters, numpy seed {SEED}; texts of 10 words from a synthetic vocabulary), inserted {BATCH} "
        f"per call; {args.queries} vector queries (perturbed copies of stored vectors) and {args.queries} "
        f"keyword queries (3 words), k={K}, one at a time after {WARMUP} warm-ups. "
        f"Machine: {os.cpu_count()} CPUs ({_cpu_model()}), load average {load:.2f} at the start, "
        f"Python {sys.version.split()[0]}.",
        "",
        "Direct: the provider's library in this process (faiss: its provider class; the others: their "
        "`open_for_bench`). API: `lamina run` (LAMINA_LOG_LEVEL=warning) with the provider and "
        "`inline::sentence-transformers`, over HTTP from one aiohttp client. A vector query through "
        'the API takes text, which Lamina embeds with all-MiniLM-L6-v2 (ONNX) first; "embeddings '
        'alone" is `POST /v1/inference/embeddings` of the same text, and API − embedding is the '
        "difference of the two p50s. recall@10 is the direct vector queries' against exact numpy "
        "search (the API queries search with the text's MiniLM embedding, so they have no exact answer "
        "to compare with).",
        "",
        markdown_table(HEADERS, main_rows),
        "",
        "Overhead ratios:",
        "",
        markdown_table(RATIO_HEADERS, ratio_rows),
        "",
        verdict(results, args.chunks),
    ]
    notes = []
    for r in results:
        if r.skipped:
            notes.append(f"- {r.provider}: skipped — {r.skipped}")
        notes += [f"- {r.provider}: {e}" for e in r.errors]
        if r.seconds and not r.skipped:
            phases = ", ".join(f"{k} {v:.0f} s" for k, v in r.seconds.items())
            notes.append(f"- {r.provider} wall time: {phases}")
    if notes:
        lines += ["", *notes]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench retrieval", description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument(
        "--queries", type=int, default=200, help="vector queries, and as many keyword queries"
    )
    parser.add_argument("--providers", nargs="+", choices=PROVIDERS, default=PROVIDERS)
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args(argv)
    if args.chunks < K or args.queries < 1:
        parser.error(f"--chunks must be at least {K} and --queries at least 1")
    load = os.getloadavg()[0]
    from lamina.logging import configure_logging

    configure_logging(level="warning")  # the direct providers' own info lines

    started = time.perf_counter()
    data = make_data(args.chunks, args.queries)
    _log(
        f"data: {args.chunks:,} chunks, {data.clusters} clusters, {args.queries} queries "
        f"({time.perf_counter() - started:.1f} s)"
    )

    results = []
    with tempfile.TemporaryDirectory(prefix="lamina-bench-retrieval-") as tmp:
        for name in args.providers:
            results.append(bench_provider(name, Path(tmp), data))

    main_rows, ratio_rows = rows(results)
    print(console_table(HEADERS, main_rows))
    print()
    print(console_table(RATIO_HEADERS, ratio_rows))
    print()
    print(verdict(results, args.chunks).replace("**", ""))
    for r in results:
        if r.skipped:
            print(f"{r.provider}: skipped — {r.skipped}")
        for e in r.errors:
            print(f"{r.provider}: {e}")
        if r.seconds and not r.skipped:
            print(f"{r.provider} wall time: " + ", ".join(f"{k} {v:.1f} s" for k, v in r.seconds.items()))
    if not args.no_doc:
        update_doc(DOC, doc_text(args, argv, results, data, load), section="retrieval")
        print(f"\nwrote {DOC}")
    return 1 if any(r.errors for r in results) else 0
