"""JSON encoding on the request path: pydantic-core's serializer instead of ``json.dumps``.

``json.dumps`` spells every float through Python's ``repr`` (about 1 µs each), so one 384-dimension
embedding costs about 0.4 ms to encode and a small chat completion about 10 µs; pydantic-core's
Rust serializer writes the same document about ten times faster. ``ensure_ascii`` keeps non-ASCII
text escaped as ``json.dumps`` does, and NaN/Infinity are written the same way. The one visible
difference is how some floats are spelled (``1e-05`` becomes ``0.00001``, ``1.5e-07`` becomes
``1.5e-7``): the same numbers, each read back exactly (tests/test_fast_json.py checks this).

A value pydantic-core refuses (a lone surrogate in a string, an object it does not know) falls back
to ``json.dumps``, which encodes it or raises TypeError as before; a few types ``json.dumps`` refuses
(datetime, Decimal, bytes, set) are written the way pydantic writes them instead.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic_core import PydanticSerializationError, to_json


def dumps(value: Any) -> bytes:
    """``value`` as compact JSON bytes (no spaces after separators), non-ASCII escaped."""
    try:
        return to_json(value, ensure_ascii=True)
    except (PydanticSerializationError, ValueError, TypeError):
        return json.dumps(value, separators=(",", ":")).encode()
