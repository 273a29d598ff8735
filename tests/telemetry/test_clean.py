"""lamina.telemetry.spans.clean: what any span attribute goes through (on the request path, and in the
export worker for deferred ones): None dropped, other values made attribute types, secrets masked."""

from __future__ import annotations

from lamina.redaction import MASK, REQUEST_SECRETS
from lamina.telemetry.spans import clean


class _Thing:
    def __str__(self) -> str:
        return "thing Bearer abc.def-123"


def test_values_that_are_not_attribute_types_become_text_and_none_is_dropped() -> None:
    out = clean({"a": {"k": "v"}, "l": [1, {"x": 1}], "t": ("x", True), "n": None, "i": 3, "f": 0.5})
    assert out == {"a": "{'k': 'v'}", "l": (1, "{'x': 1}"), "t": ("x", True), "i": 3, "f": 0.5}


def test_secrets_are_masked_in_text_made_from_odd_values_and_under_secret_keys() -> None:
    token = REQUEST_SECRETS.set(("request-secret-value",))
    try:
        out = clean(
            {
                "obj": _Thing(),
                "items": ["x request-secret-value y", _Thing()],
                "api_key": "plain",
                "note": "uses request-secret-value",
            }
        )
    finally:
        REQUEST_SECRETS.reset(token)
    assert out["obj"] == f"thing Bearer {MASK}"
    assert out["items"] == (f"x {MASK} y", f"thing Bearer {MASK}")
    assert out["api_key"] == MASK and out["note"] == f"uses {MASK}"
