"""``${env.X}`` substitution in run configs, the way Llama Stack 0.2.x does it, in both syntaxes.

Llama Stack 0.2.12:

- ``${env.X}``: the value of X; an error when X is unset or empty.
- ``${env.X:default}``: X, or ``default`` when X is unset or empty.
- ``${env.X+value}``: ``value`` when X is set and non-empty, else empty.

Newer Llama Stack (bash-like):

- ``${env.X:=default}``: X, or ``default`` when X is unset or empty.
- ``${env.X:+value}``: ``value`` when X is set and non-empty, else empty.

As in Llama Stack, a leading ``~`` in a substituted value is expanded to the home directory, and a
string in which something was substituted is converted like newer Llama Stack does it: empty ->
``None`` (so optional fields and providers can be switched off from the environment), ``true`` /
``false`` (any case) -> a bool, a decimal integer -> an int, a decimal number -> a float. Strings
without a substitution are left exactly as YAML read them.

A list item with a ``provider_id`` that comes out as ``__disabled__`` (or empty, from a
substitution) is a disabled provider or resource, as in Llama Stack: a provider stays listed with
``provider_id: None`` and its config is not substituted (so its variables need not be set); a
resource (a model, shield, ...) is dropped.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from lamina.errors import ConfigError, format_path

_PATTERN = re.compile(r"\$\{env\.([A-Za-z_][A-Za-z0-9_]*)(?:(:=|:\+|:|\+)([^}]*))?\}")
_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?")

DISABLED = "__disabled__"


def convert_scalar(value: str) -> Any:
    """Newer Llama Stack's conversion of a substituted string: "", true/false, ints, floats."""
    if value == "":
        return None
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if _INT.fullmatch(value):
        return int(value)
    if _FLOAT.fullmatch(value):
        return float(value)
    return value


def _substitute_str(value: str, env: Mapping[str, str], source: str, path: tuple[Any, ...]) -> Any:
    def repl(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3) or ""
        current = env.get(name) or ""  # Llama Stack treats set-but-empty like unset
        if op is None:
            if not current:
                state = "is empty" if name in env else "is not set"
                raise ConfigError(
                    f"{source}: {format_path(path)}: environment variable {name} {state}, and "
                    f"{match.group(0)} needs a value; set it (lamina run --env {name}=...) or give "
                    f"a default: ${{env.{name}:=default}}"
                )
            result = current
        elif op in (":=", ":"):
            result = current or arg
        else:  # ":+" and "+": the value when set and non-empty
            result = arg if current else ""
        return os.path.expanduser(result) if result.startswith("~") else result

    if not _PATTERN.search(value):
        return value  # "${" but no substitution: left as written
    return convert_scalar(_PATTERN.sub(repl, value))


def _is_disabled(raw_id: Any, resolved: Any) -> bool:
    if resolved == DISABLED:
        return True
    return resolved is None and isinstance(raw_id, str) and bool(_PATTERN.search(raw_id))


def _substitute_list(
    node: list[Any], env: Mapping[str, str], source: str, path: tuple[Any, ...]
) -> list[Any]:
    out = []
    is_provider_list = len(path) == 2 and path[0] == "providers"
    for i, item in enumerate(node):
        if isinstance(item, dict) and "provider_id" in item:
            raw_id = item["provider_id"]
            resolved = substitute_env(raw_id, env, source, (*path, i, "provider_id"))
            if _is_disabled(raw_id, resolved):
                if is_provider_list:
                    # Listed but off: the Stack skips it, so its config (and its variables) stay as written.
                    out.append({**item, "provider_id": None})
                continue  # a resource on a disabled provider is not registered
        out.append(substitute_env(item, env, source, (*path, i)))
    return out


def substitute_env(node: Any, env: Mapping[str, str], source: str, path: tuple[Any, ...] = ()) -> Any:
    """Return a copy of a YAML tree with every ``${env...}`` replaced; errors name file and key."""
    if isinstance(node, dict):
        return {k: substitute_env(v, env, source, (*path, k)) for k, v in node.items()}
    if isinstance(node, list):
        return _substitute_list(node, env, source, path)
    if isinstance(node, str) and "${" in node:
        return _substitute_str(node, env, source, path)
    return node
