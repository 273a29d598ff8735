"""The pooled upstream client, extended for Ollama: NDJSON streams and Ollama's error shapes.

Everything else (pooling, timeouts, transport errors -> 502/504 naming the provider, retries with
backoff) is ``lamina.providers.http_upstream.UpstreamClient``, unchanged.

Ollama answers errors as ``{"error": "..."}`` with a 4xx/5xx status, and, once a stream has
started, as a ``{"error": "..."}`` line. A model that is not pulled is a 404 whose message says
so; it becomes a 404 telling the user to ``ollama pull`` it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from lamina.errors import LaminaError, NotFoundError, UpstreamError
from lamina.providers.http_upstream import UpstreamClient, _error_message


class OllamaClient(UpstreamClient):
    # -- requests ------------------------------------------------------------------------------

    async def call(self, method: str, path: str, body: Any = None, *, model: str | None = None) -> dict:
        """One JSON request; the answer must be a JSON object."""
        url = self.url(path)

        async def attempt() -> bytes:
            try:
                async with self.session.request(method, url, json=body) as resp:
                    raw = await resp.read()
                    if resp.status >= 400:
                        raise self._ollama_status_error(resp.status, raw, url, resp.headers, model)
                    return raw
            except LaminaError:
                raise
            except Exception as exc:
                raise self._transport_error(exc, url) from exc

        raw = await self.retrying(url, attempt)  # 429, 5xx and dropped connections, with backoff
        try:
            doc = json.loads(raw)
        except ValueError:
            raise UpstreamError(
                self.provider_id, f"{self.where(url)} answered with invalid JSON: {_short(raw)}"
            ) from None
        if not isinstance(doc, dict):
            kind = type(doc).__name__
            raise UpstreamError(self.provider_id, f"{self.where(url)} answered {kind}, not a JSON object")
        if "error" in doc:
            raise UpstreamError(self.provider_id, f"{self.where(url)} reported an error: {doc['error']}")
        return doc

    async def stream_ndjson(self, path: str, body: Any, *, model: str | None = None) -> AsyncIterator[dict]:
        """POST and yield each NDJSON line's object as it arrives; the last one has ``done: true``.

        A stream that ends before its ``done: true`` line, a line that is not a JSON object, and an
        ``{"error": ...}`` line all raise UpstreamError (502) naming the provider.
        """
        url = self.url(path)

        async def attempt() -> Any:  # retried only until the upstream answers 2xx (its first byte)
            try:
                resp = await self.session.post(url, json=body)
            except Exception as exc:
                raise self._transport_error(exc, url) from exc
            if resp.status >= 400:
                try:
                    raw = await resp.read()
                except Exception:
                    raw = b""
                finally:
                    resp.release()
                raise self._ollama_status_error(resp.status, raw, url, resp.headers, model)
            return resp

        resp = await self.retrying(url, attempt)
        async with resp:
            done = False
            try:
                async for line in resp.content:
                    line = line.strip()
                    if not line:
                        continue
                    event = self._parse_line(line, url)
                    yield event
                    if event.get("done"):
                        done = True
                        break
            except LaminaError:
                raise
            except Exception as exc:
                raise self._transport_error(exc, url, streaming=True) from exc
            if not done:
                where = self.where(url)
                raise UpstreamError(
                    self.provider_id, f"the stream from {where} ended before its final done:true line"
                )

    def _parse_line(self, line: bytes, url: str) -> dict:
        try:
            event = json.loads(line)
        except ValueError:
            raise UpstreamError(
                self.provider_id, f"{self.where(url)} sent a stream line that is not JSON: {_short(line)}"
            ) from None
        if not isinstance(event, dict):
            where = self.where(url)
            raise UpstreamError(self.provider_id, f"{where} sent a stream line that is not an object")
        if "error" in event:
            where = self.where(url)
            raise UpstreamError(self.provider_id, f"{where} reported an error mid-stream: {event['error']}")
        return event

    # -- error mapping -------------------------------------------------------------------------

    def _ollama_status_error(
        self, status: int, raw: bytes, url: str, headers: Any, model: str | None
    ) -> LaminaError:
        message = _error_message(raw)
        if status == 404 and model and "not found" in message.lower():
            return NotFoundError(
                f"provider '{self.provider_id}': model '{model}' is not available on its Ollama server "
                f"(Ollama said: {message}). Pull it there with `ollama pull {model}`, or "
                f"register a model the server has (its GET /api/tags lists them).",
                param="model",
                provider_id=self.provider_id,
            )
        if status == 404:
            return UpstreamError(
                self.provider_id,
                f"{self.where(url)} answered HTTP 404: {message}. Is the provider's `url` an Ollama server "
                f"(http://host:11434, without /v1)?",
                upstream_status=404,
            )
        return self._status_error(status, raw, url, headers)


def _short(raw: bytes, limit: int = 200) -> str:
    text = raw.decode("utf-8", "replace").strip()
    return repr(text if len(text) <= limit else text[:limit] + "...")
