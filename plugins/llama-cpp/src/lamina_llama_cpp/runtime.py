"""One GGUF loaded in llama.cpp (xllamacpp), called without blocking the event loop.

xllamacpp runs llama.cpp's server engine in-process: its ``handle_*`` calls block the calling
thread (with the GIL released) while llama.cpp schedules the request onto one of ``parallel``
slots, and a streamed answer arrives through a callback on that thread. Each call therefore runs
on a thread of the runtime's own pool, and chunks cross to the event loop through an asyncio
queue. A callback that returns True tells llama.cpp to stop, which is how a client that goes away
frees its slot: non-streamed answers are therefore generated streamed too and joined
(``assemble``), because xllamacpp's non-streamed calls cannot be stopped. Admission is bounded:
``parallel`` running plus ``max_queue`` waiting; beyond that a request is refused at once with 503
and Retry-After instead of piling up. A slot is given back when llama.cpp's thread is done, so
the count is exact; ``close`` stops every generation rather than waiting for it to finish.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from lamina.config import lamina_home
from lamina.errors import BadRequestError, LaminaError, ServiceUnavailableError, UpstreamError
from lamina.providers.package_files import PackageFileError, package_file
from lamina_llama_cpp.assemble import chat_from_chunks, completion_from_chunks
from lamina_llama_cpp.config import LlamaCppConfig

log = structlog.get_logger(__name__)

# name -> (import package, file in it, how to install it). The package is a plain data package
# (models/smollm2 in this repository), brought by this plugin's `bundled-model` extra.
BUNDLED = {
    "SmolLM2-135M-Instruct": (
        "lamina_model_smollm2",
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "'lamina-llama-cpp[bundled-model]'",
    )
}
_GGUF_MAGIC = b"GGUF"


def bundled_path(name: str) -> Path:
    """The GGUF of a bundled model, found inside its package without importing it."""
    package, filename, install = BUNDLED[name]
    try:
        return package_file(package, filename, install, no_deps=False)
    except PackageFileError as exc:
        raise BadRequestError(f"the bundled model {name}: {exc}", param="provider_model_id") from None


def default_model_dirs() -> list[Path]:
    """Where GGUF files may live when ``model_dirs`` is not configured: ``$LAMINA_HOME/models``."""
    return [lamina_home() / "models"]


def resolve_gguf(provider_model_id: str, model_dirs: Sequence[str | Path] | None = None) -> Path:
    """A model's GGUF file: a bundled model's name, or a file inside one of ``model_dirs``.

    A path may be absolute or relative to a model directory. Anything else gets the same answer
    whether or not it exists, so registering a model cannot probe the server's file system.
    """
    if provider_model_id in BUNDLED:
        return _check_magic(bundled_path(provider_model_id), provider_model_id)
    configured = default_model_dirs() if model_dirs is None else model_dirs
    dirs = [Path(d).expanduser().resolve() for d in configured]
    path = Path(provider_model_id).expanduser()
    for candidate in [path] if path.is_absolute() else [d / path for d in dirs]:
        resolved = candidate.resolve()  # follows `..` and symlinks: a link out of a model dir stays out
        if any(resolved.is_relative_to(d) for d in dirs) and resolved.is_file():
            return _check_magic(resolved, provider_model_id)
    log.info("gguf_not_in_model_dirs", provider_model_id=provider_model_id, model_dirs=[str(d) for d in dirs])
    raise BadRequestError(
        f"provider_model_id {provider_model_id!r} is neither a bundled model ({', '.join(BUNDLED)}) nor "
        "a .gguf file in this provider's model directories; put the file in one of them (the provider's "
        "config.model_dirs; default $LAMINA_HOME/models) and name it by its path or its name there",
        param="provider_model_id",
    )


def _check_magic(path: Path, provider_model_id: str) -> Path:
    with path.open("rb") as fh:
        if fh.read(4) != _GGUF_MAGIC:
            raise BadRequestError(
                f"provider_model_id {provider_model_id!r} is not a GGUF file (no GGUF magic)",
                param="provider_model_id",
            )
    return path.resolve()


@dataclass
class GGUFInfo:
    """What the GGUF says about itself."""

    name: str | None = None
    basename: str | None = None
    architecture: str | None = None
    tokenizer_pre: str | None = None  # the pre-tokenizer llama.cpp names for the model family
    context_length: int | None = None
    embedding_length: int | None = None
    chat_template: str | None = None

    @property
    def template_knows_tools(self) -> bool:
        return bool(self.chat_template) and "tools" in self.chat_template


def read_gguf_info(path: Path) -> GGUFInfo:
    import gguf

    reader = gguf.GGUFReader(str(path))

    def value(key: str) -> Any:
        field = reader.fields.get(key)
        return field.contents() if field is not None else None

    arch = value("general.architecture")
    return GGUFInfo(
        name=value("general.name"),
        basename=value("general.basename"),
        architecture=arch,
        tokenizer_pre=value("tokenizer.ggml.pre"),
        context_length=value(f"{arch}.context_length"),
        embedding_length=value(f"{arch}.embedding_length"),
        chat_template=value("tokenizer.chat_template"),
    )


_END = object()
STOPPING_GRACE = 5.0  # seconds a request may wait for generations being stopped to give their slots back


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class Slot:
    """One admitted request's place in a runtime's capacity.

    Released exactly once: by the generation that used it when llama.cpp's thread is really done
    (not when its caller gave up), or by whoever reserved it if it never started. ``weight``: the
    llama.cpp tasks one call starts (a completion of several prompts starts one per prompt).
    """

    def __init__(self, runtime: Runtime, weight: int = 1) -> None:
        self._runtime = runtime
        self.weight = weight
        self.used = False
        self.released = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self._runtime.inflight -= self.weight

    def release_unused(self) -> None:
        if not self.used:
            self.release()


class Runtime:
    """A loaded GGUF. ``embedding`` runtimes serve embeddings only (llama.cpp's rule)."""

    def __init__(
        self, path: Path, config: LlamaCppConfig, provider_id: str, *, embedding: bool = False
    ) -> None:
        self.path = path
        self.config = config
        self.provider_id = provider_id
        self.embedding = embedding
        self.info = GGUFInfo()
        self.capacity = config.parallel + config.max_queue
        self.inflight = 0
        self.context_length = config.context_length  # per slot; lowered to the GGUF's own once loaded
        self._server: Any = None
        self._pool = ThreadPoolExecutor(max_workers=self.capacity + 1, thread_name_prefix="llama-cpp")
        self._load_lock = asyncio.Lock()
        self._running: dict[threading.Event, asyncio.Future[None]] = {}
        self._closing = False
        self.load_seconds: float | None = None

    # -- loading ---------------------------------------------------------------------------

    async def ensure_loaded(self) -> None:
        if self._server is not None:
            return
        async with self._load_lock:
            if self._server is None:
                loop = asyncio.get_running_loop()
                started = time.perf_counter()
                self._server, self.info = await loop.run_in_executor(self._pool, self._load)
                self.load_seconds = time.perf_counter() - started
                log.info(
                    "gguf_loaded",
                    path=str(self.path),
                    seconds=round(self.load_seconds, 3),
                    embedding=self.embedding,
                )

    def _load(self) -> tuple[Any, GGUFInfo]:
        import xllamacpp

        info = read_gguf_info(self.path)
        cfg = self.config
        params = xllamacpp.CommonParams()
        params.model.path = str(self.path)
        params.n_parallel = cfg.parallel
        ctx = cfg.context_length
        if info.context_length:
            ctx = min(ctx, int(info.context_length))
        params.n_ctx = ctx * cfg.parallel  # llama.cpp splits n_ctx across the slots
        self.context_length = ctx
        params.n_batch = cfg.batch_size
        params.cpuparams.n_threads = cfg.threads
        params.cpuparams_batch.n_threads = cfg.threads
        params.n_gpu_layers = cfg.gpu_layers
        params.use_jinja = True
        params.verbosity = -1
        if self.embedding:
            params.embedding = True
            params.pooling_type = xllamacpp.llama_pooling_type.LLAMA_POOLING_TYPE_MEAN
        try:
            server = xllamacpp.Server(params)
        except Exception as exc:
            raise BadRequestError(
                f"llama.cpp could not load {self.path}: {exc}", param="provider_model_id"
            ) from exc
        return server, info

    async def close(self, *, grace: float = 10.0) -> None:
        """Stop every generation (their callbacks return True at the next token), then unload."""
        self._closing = True
        for stop in list(self._running):
            stop.set()
        running = list(self._running.values())
        if running:
            _done, pending = await asyncio.wait(running, timeout=grace)
            if pending:
                log.warning("llama_cpp_generations_still_running", count=len(pending), path=str(self.path))
        server, self._server = self._server, None
        if server is not None:
            # Dropping the last reference joins llama.cpp's threads: let a worker thread do it.
            holder = [server]
            del server
            await asyncio.get_running_loop().run_in_executor(None, holder.clear)
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- admission -------------------------------------------------------------------------

    def admit(self, n: int = 1, weight: int = 1) -> list[Slot]:
        """``n`` slots at once, or a 503 at once: a request of n choices runs whole or not at all.

        Each slot counts ``weight`` generations (the prompts of a multi-prompt completion).
        """
        total = n * weight
        if total > self.capacity:
            what = f"n={n}" if weight == 1 else f"{weight} prompts x n={n}"
            raise BadRequestError(
                f"{what} needs {total} generations at once but provider '{self.provider_id}' runs at "
                f"most {self.capacity} (parallel + max_queue); send fewer or raise them in its config",
                param="n" if weight == 1 else "prompt",
            )
        if self.inflight + total > self.capacity:
            wanted = f"{total} slots are" if total > 1 else "a slot is"
            raise ServiceUnavailableError(
                f"provider '{self.provider_id}' is busy: {self.config.parallel} requests running and "
                f"{self.config.max_queue} waiting, {self.inflight} taken and {wanted} needed "
                f"(raise parallel or max_queue in its config)",
                retry_after=1,
            )
        self.inflight += total
        return [Slot(self, weight) for _ in range(n)]

    async def acquire(self, n: int = 1, weight: int = 1) -> list[Slot]:
        """``admit``, but a request is not refused for slots whose generation is already stopping
        (its client went away; llama.cpp returns at its next token): it waits for them, briefly."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STOPPING_GRACE
        while True:
            try:
                return self.admit(n, weight)
            except ServiceUnavailableError:
                stopping = [future for stop, future in self._running.items() if stop.is_set()]
                if not stopping or loop.time() >= deadline:
                    raise
                left = deadline - loop.time()
                await asyncio.wait(stopping, timeout=left, return_when=asyncio.FIRST_COMPLETED)

    # -- calls -----------------------------------------------------------------------------

    def _check(self, result: Any) -> dict[str, Any]:
        if not isinstance(result, dict):
            raise UpstreamError(
                self.provider_id, f"llama.cpp returned {type(result).__name__}, not an object"
            )
        error = result.get("error") if "choices" not in result and "data" not in result else None
        if error is not None or ("code" in result and "message" in result):
            err = error if isinstance(error, dict) else result
            message = str(err.get("message") or err)
            code = err.get("code")
            if code in (400, "400") or err.get("type") == "invalid_request_error":
                raise BadRequestError(f"llama.cpp refused the request: {message}")
            raise UpstreamError(self.provider_id, f"llama.cpp failed: {message}")
        return result

    def _map_exception(self, exc: BaseException) -> LaminaError:
        if isinstance(exc, LaminaError):
            return exc
        if isinstance(exc, ValueError | TypeError):
            return BadRequestError(f"llama.cpp refused the request: {exc}")
        return UpstreamError(self.provider_id, f"llama.cpp failed: {type(exc).__name__}: {exc}")

    async def call(self, method: str, body: dict[str, Any], slot: Slot | None = None) -> dict[str, Any]:
        """One non-streamed answer (``handle_chat_completions``, ``handle_completions``).

        It runs streamed inside and is joined into the non-streamed document, so that cancelling
        the caller (a client gone, a sibling choice failed) stops llama.cpp at the next token.
        """
        if method == "handle_embeddings":
            return await self._blocking(method, body)
        streamed = {**body, "stream": True, "stream_options": {"include_usage": True}}
        chunks = [chunk async for chunk in self.stream(method, streamed, slot)]
        if method == "handle_chat_completions":
            return chat_from_chunks(chunks)
        return completion_from_chunks(chunks)

    async def _blocking(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        """A call xllamacpp cannot stream (embeddings: short). Its slot is held until it returns."""
        await self.ensure_loaded()
        (slot,) = await self.acquire(1)
        slot.used = True
        fn: Callable[[dict[str, Any]], Any] = getattr(self._server, method)
        future = asyncio.get_running_loop().run_in_executor(self._pool, fn, body)
        future.add_done_callback(lambda f: (slot.release(), f.cancelled() or f.exception()))
        try:
            result = await asyncio.shield(future)
        except Exception as exc:
            raise self._map_exception(exc) from exc
        return self._check(result)

    async def stream(
        self, method: str, body: dict[str, Any], slot: Slot | None = None, *, weight: int = 1
    ) -> AsyncIterator[dict[str, Any]]:
        """A streamed call: chunks as llama.cpp produces them; closing the iterator stops generation.

        ``slot``: one reserved by ``admit`` (n choices reserve theirs together); else one is taken
        here. It is released when llama.cpp's thread returns, not when the iterator is closed.
        """
        try:
            await self.ensure_loaded()
            if slot is None:
                (slot,) = await self.acquire(1, weight)
        except BaseException:
            if slot is not None:
                slot.release()
            raise
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()
        server = self._server

        def put(item: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is gone (shutdown): stop generating
                stop.set()

        def on_chunk(chunk: Any) -> bool:
            if stop.is_set():
                return True
            if chunk is not None:  # llama.cpp sends an empty event between multi-prompt results
                put(chunk)
            return stop.is_set()

        def run() -> None:
            try:
                if not stop.is_set():
                    getattr(server, method)(body, on_chunk)
            except BaseException as exc:
                put(_Failure(exc))
            finally:
                put(_END)

        def finished(future: asyncio.Future[None]) -> None:
            self._running.pop(stop, None)
            slot.release()
            queue.put_nowait(_END)  # also when run() never ran (its future cancelled by close)
            if not future.cancelled():
                future.exception()  # retrieved: run() reports failures through the queue

        slot.used = True
        future = loop.run_in_executor(self._pool, run)
        self._running[stop] = future
        future.add_done_callback(finished)
        try:
            while True:
                item = await queue.get()
                if item is _END:
                    break
                if isinstance(item, _Failure):
                    raise self._map_exception(item.exc) from item.exc
                yield self._check(item)
            await asyncio.wait([future])  # the thread is returning after _END (or never ran)
            slot.release()
            if self._closing and (stop.is_set() or future.cancelled()):
                raise ServiceUnavailableError(
                    f"provider '{self.provider_id}' is shutting down: the generation was stopped; "
                    f"retry on another server or after the restart",
                    retry_after=1,
                )
        finally:
            stop.set()
