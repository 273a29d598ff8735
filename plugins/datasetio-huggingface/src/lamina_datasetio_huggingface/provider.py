"""The remote::huggingface datasetio provider: ``huggingface://`` datasets through ``datasets.load_dataset``.

URIs (``source.uri``), as in Llama Stack (``huggingface://datasets/llamastack/simpleqa?split=train``):
the path after ``huggingface://`` (a leading ``datasets/`` dropped) is ``load_dataset``'s ``path`` and the
query its keyword arguments. So ``huggingface://csv?data_files=/data/qa.csv&split=train`` loads a local
CSV with the packaged ``csv`` builder, ``huggingface:///data/my_dataset?split=test`` a local dataset
directory, and ``huggingface://datasets/owner/name?split=train`` a hub dataset. Without ``split`` a
dataset with one split answers that split.

Local builders and directories work offline and are loaded (off the event loop) when registered, so a
bad one is a 400 then. A hub dataset is loaded on its first page: the hub is probed first (a few
seconds at most), and one that does not answer, or ``HF_HUB_OFFLINE=1`` with nothing cached, fails at
once with a 502 naming the dataset, instead of the library's long network time-outs.

Pages are sliced from the loaded dataset's Arrow table (memory-mapped from the library's cache), so a
page never loads the whole dataset into memory. The library's download counter (a request to S3 on
every load, even of a local file) is turned off.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlparse

import structlog

from lamina.apis.datasets import Dataset, IterRowsResponse
from lamina.errors import BadRequestError, LaminaError, UpstreamError
from lamina.providers.base import ProviderBase, ProviderContext
from lamina.providers.dataset_rows import AppendedRows, page
from lamina.specs import Api
from lamina.storage import KVStore, open_kvstore
from lamina_datasetio_huggingface.config import HuggingfaceDatasetIOConfig

log = structlog.get_logger(__name__)

SCHEME = "huggingface://"
DEFAULT_ENDPOINT = "https://huggingface.co"
PROBE_SECONDS = 3.0  # how long the hub may take to answer a probe before it counts as unreachable
PROBE_CACHE_SECONDS = 30.0  # a probe's verdict is reused this long
# The library's packaged builders that read local files (data_files=...), no hub needed.
LOCAL_BUILDERS = frozenset({"csv", "json", "parquet", "text", "arrow", "pandas", "xml", "sql"})


async def create_provider(
    config: HuggingfaceDatasetIOConfig, deps: dict[Api, Any], context: ProviderContext
) -> HuggingfaceDatasetIO:
    return HuggingfaceDatasetIO(config, context)


def parse_uri(uri: str) -> tuple[str, dict[str, str]]:
    """(``load_dataset`` path, keyword arguments) of a ``huggingface://`` URI."""
    if not uri.startswith(SCHEME):
        raise BadRequestError(
            f"source.uri {uri[:80]!r}: remote::huggingface reads huggingface:// URIs "
            f"(huggingface://datasets/<owner>/<name>?split=train, huggingface://csv?data_files=<path>); "
            f"register other sources with the inline::localfs provider",
            param="source.uri",
        )
    parsed = urlparse(uri)
    netloc, path = parsed.netloc, parsed.path
    if netloc == "datasets":
        netloc = ""
        path = path.lstrip("/")
    name = f"{netloc}{path}" if netloc else path
    if not name:
        raise BadRequestError(
            f"source.uri {uri[:80]!r} names no dataset; e.g. huggingface://datasets/<owner>/<name>?split=train",
            param="source.uri",
        )
    return name, dict(parse_qsl(parsed.query, keep_blank_values=True))


def is_local(name: str) -> bool:
    return name in LOCAL_BUILDERS or name.startswith(("/", "./", "~")) or Path(name).expanduser().exists()


class HuggingfaceDatasetIO(ProviderBase):
    def __init__(self, config: HuggingfaceDatasetIOConfig, context: ProviderContext) -> None:
        super().__init__(context)
        self.config = config
        self.loaded: dict[str, Any] = {}  # dataset id -> datasets.Dataset
        self._loading: dict[str, asyncio.Lock] = {}
        self._probe: tuple[float, str | None] | None = None  # (when, error or None)
        self.store: KVStore | None = None
        self.appended: AppendedRows | None = None

    @property
    def cache_dir(self) -> Path:
        return self.context.state_dir / "hf-cache"

    async def initialize(self) -> None:
        self.context.state_dir.mkdir(parents=True, exist_ok=True)
        self.store = await open_kvstore(self.config.store_config(self.context.state_dir))
        self.appended = AppendedRows(self.store)

    async def shutdown(self) -> None:
        if self.store is not None:
            await self.store.close()

    async def health(self) -> dict[str, Any]:
        return {"status": "OK"}  # local datasets need no hub; a hub dataset reports its own 502

    # -- the DatasetIOProvider contract ----------------------------------------------------------

    async def register_dataset(self, dataset: Dataset) -> None:
        if dataset.source.type != "uri":
            raise BadRequestError(
                "source: remote::huggingface reads huggingface:// URIs; register rows with the "
                "inline::localfs provider",
                param="source",
            )
        name, _ = parse_uri(dataset.source.uri)
        if is_local(name):
            await self._dataset(dataset)  # offline and cheap enough: a bad one fails now

    async def unregister_dataset(self, dataset: Dataset) -> None:
        self.loaded.pop(dataset.identifier, None)
        await self._rows().drop(dataset.identifier)

    async def iterrows(self, dataset: Dataset, start_index: int, limit: int | None) -> IterRowsResponse:
        ds = await self._dataset(dataset)

        async def read(start: int, stop: int | None) -> list[dict[str, Any]]:
            return await asyncio.to_thread(_slice, ds, start, stop)

        async def count() -> int:
            return len(ds)

        return await page(dataset.identifier, start_index, limit, read, count, self._rows())

    async def append_rows(self, dataset: Dataset, rows: list[dict[str, Any]]) -> None:
        await self._dataset(dataset)
        await self._rows().append(dataset.identifier, rows)

    # -- loading ---------------------------------------------------------------------------------

    def _rows(self) -> AppendedRows:
        if self.appended is None:
            raise RuntimeError("the provider is not initialized")
        return self.appended

    async def _dataset(self, dataset: Dataset) -> Any:
        ds = self.loaded.get(dataset.identifier)
        if ds is not None:
            return ds
        async with self._loading.setdefault(dataset.identifier, asyncio.Lock()):
            ds = self.loaded.get(dataset.identifier)
            if ds is None:
                name, kwargs = parse_uri(dataset.source.uri)
                if not is_local(name):
                    await self._check_hub(dataset, name)
                started = time.perf_counter()
                ds = await asyncio.to_thread(self._load, dataset, name, kwargs)
                log.info(
                    "hf_dataset_loaded",
                    dataset_id=dataset.identifier,
                    path=name,
                    rows=len(ds),
                    ms=round((time.perf_counter() - started) * 1000, 1),
                )
                self.loaded[dataset.identifier] = ds
            return ds

    def _load(self, dataset: Dataset, name: str, kwargs: dict[str, str]) -> Any:
        # The library pings a download counter on S3 for every load, even of a local file (up to 3 s
        # without a network); a server sends no such telemetry.
        os.environ.setdefault("HF_UPDATE_DOWNLOAD_COUNTS", "0")
        os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
        import datasets as hf

        hf.config.HF_UPDATE_DOWNLOAD_COUNTS = False  # it may have been imported before the variable was set
        path = str(Path(name).expanduser()) if name.startswith("~") else name
        try:
            loaded = hf.load_dataset(path, cache_dir=str(self.cache_dir), **kwargs)
        except LaminaError:
            raise
        except (ConnectionError, TimeoutError) as exc:
            raise self._unreachable(dataset, name, f"{type(exc).__name__}: {exc}") from None
        except (FileNotFoundError, ValueError, TypeError) as exc:
            if _offline_error(exc):
                raise self._unreachable(dataset, name, f"{type(exc).__name__}: {exc}") from None
            raise BadRequestError(
                f"source.uri: huggingface dataset {name!r} (dataset '{dataset.identifier}') cannot be "
                f"loaded: {type(exc).__name__}: {str(exc)[:400]}",
                param="source.uri",
            ) from None
        except Exception as exc:  # the library raises many kinds; a hub problem is the likely one
            if _offline_error(exc):
                raise self._unreachable(dataset, name, f"{type(exc).__name__}: {exc}") from None
            raise BadRequestError(
                f"source.uri: huggingface dataset {name!r} (dataset '{dataset.identifier}') cannot be "
                f"loaded: {type(exc).__name__}: {str(exc)[:400]}",
                param="source.uri",
            ) from None
        if isinstance(loaded, hf.DatasetDict):
            if len(loaded) != 1:
                raise BadRequestError(
                    f"source.uri: huggingface dataset {name!r} has the splits {', '.join(loaded)}; add "
                    f"?split=<one of them> to the URI",
                    param="source.uri",
                )
            loaded = next(iter(loaded.values()))
        if not isinstance(loaded, hf.Dataset):
            raise BadRequestError(
                f"source.uri: huggingface dataset {name!r} loads as a {type(loaded).__name__}, not a "
                f"dataset with rows; drop streaming=... from the URI",
                param="source.uri",
            )
        return loaded

    def _unreachable(self, dataset: Dataset, name: str, why: str) -> UpstreamError:
        endpoint = os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
        mode = " (HF_HUB_OFFLINE is set and it is not in the local cache)" if offline else ""
        return UpstreamError(
            self.provider_id,
            f"huggingface dataset {name!r} (dataset '{dataset.identifier}') cannot be fetched: the hub at "
            f"{endpoint} is unreachable{mode} ({why[:300]}). Load it where the hub is reachable, or "
            f"register local files instead (huggingface://csv?data_files=<path>&split=train, or the "
            f"inline::localfs provider).",
        )

    async def _check_hub(self, dataset: Dataset, name: str) -> None:
        """Fail at once when the hub does not answer (the library would wait through long time-outs)."""
        if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
            return  # the library answers from its cache or fails at once
        now = time.monotonic()
        if self._probe is None or now - self._probe[0] > PROBE_CACHE_SECONDS:
            self._probe = (now, await _probe(os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT))
        if self._probe[1] is not None:
            raise self._unreachable(dataset, name, self._probe[1])


async def _probe(endpoint: str) -> str | None:
    """None when ``endpoint`` answers HTTP within PROBE_SECONDS, else why not."""
    import aiohttp

    try:
        timeout = aiohttp.ClientTimeout(total=PROBE_SECONDS)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.head(endpoint, allow_redirects=False):
                return None
    except TimeoutError:
        return f"no answer within {PROBE_SECONDS:g}s"
    except aiohttp.ClientError as exc:
        return f"{type(exc).__name__}: {exc}"


def _offline_error(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return any(
        word in text
        for word in ("offline", "connection", "couldn't reach", "could not reach", "timed out", "timeout")
    )


def _slice(ds: Any, start: int, stop: int | None) -> list[dict[str, Any]]:
    n = len(ds)
    stop = n if stop is None else min(stop, n)
    if start >= stop:
        return []
    return ds.with_format("arrow")[start:stop].to_pylist()
