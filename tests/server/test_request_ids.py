"""Generated request ids: 32 hex digits like a uuid4's hex, unique, made without a system call."""

from __future__ import annotations

import os
import re

from lamina.server import middlewares
from lamina.server.middlewares import new_request_id


def test_generated_ids_are_32_hex_digits_and_unique(monkeypatch) -> None:
    def no_urandom(n: int) -> bytes:
        raise AssertionError("a request id must not cost a getrandom() call per request")

    monkeypatch.setattr(os, "urandom", no_urandom)
    ids = [new_request_id() for _ in range(10_000)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == len(ids)
    # one process-wide random prefix: ids of two server processes do not collide
    assert {i[:16] for i in ids} == {middlewares._ID_PREFIX}
