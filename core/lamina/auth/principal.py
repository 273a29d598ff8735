"""Who the caller is: the principal the auth middleware found, readable by every handler."""

from __future__ import annotations

from dataclasses import dataclass, field

# The attribute names access rules read (Llama Stack's): a principal may carry others too.
ATTRIBUTE_NAMES = ("roles", "teams", "projects", "namespaces")


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: ``id`` (the token's subject, the key's principal) and attributes."""

    id: str
    attributes: dict[str, list[str]] = field(default_factory=dict)
    via: str = ""  # what authenticated it: "jwt", "introspection", "custom", "api_key", "bootstrap"

    def has_role(self, role: str) -> bool:
        return role in self.attributes.get("roles", ())


def attributes_from_claims(claims: dict, mapping: dict[str, str]) -> dict[str, list[str]]:
    """Map token claims to attributes as Llama Stack does: a list claim adds its items, another value
    adds its space-separated words (``scope: "a b"`` -> ``["a", "b"]``)."""
    attributes: dict[str, list[str]] = {}
    for claim, attribute in mapping.items():
        if claim not in claims or claims[claim] is None:
            continue
        value = claims[claim]
        values = [str(v) for v in value] if isinstance(value, list) else str(value).split()
        bucket = attributes.setdefault(attribute, [])
        bucket.extend(v for v in values if v not in bucket)
    return attributes
