"""``${env.X}`` substitution in run configs, in both Llama Stack syntaxes.

0.2.12: ``${env.X}`` (required), ``${env.X:default}`` (default when unset), ``${env.X+value}``
(value when set, else empty). Newer: ``${env.X:=default}`` (default when unset or empty) and
``${env.X:+value}`` (value when set and non-empty, else empty). A value that is exactly one
substitution and comes out empty becomes ``None``, so optional fields and providers can be
switched off from the environment.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from lamina.errors import ConfigError

_PATTERN = re.compile(r"\$\{env\.([A-Za-z_][A-Za-z0-9_]*)(?:(:=|:\+|:|\+)([^}]*))?\}")


def format_path(path: tuple[Any, ...]) -> str:
    """``("providers", "inference", 0, "config")`` -> ``providers.inference[0].config``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "<top level>"


def _substitute_str(value: str, env: Mapping[str, str], where: str) -> str | None:
    def repl(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3) or ""
        current = env.get(name)
        if op is None:
            if current is None:
                raise ConfigError(
                    f"{where}: environment variable {name} is not set; set it "
                    f"(lamina run --env {name}=...) or give a default: ${{env.{name}:=default}}"
                )
            return current
        if op == ":=":
            return current if current else arg
        if op == ":":
            return current if current is not None else arg
        if op == ":+":
            return arg if current else ""
        return arg if current is not None else ""  # "+": value when set

    result = _PATTERN.sub(repl, value)
    if result == "" and _PATTERN.fullmatch(value):
        return None
    return result


def substitute_env(node: Any, env: Mapping[str, str], source: str, path: tuple[Any, ...] = ()) -> Any:
    """Return a copy of a YAML tree with every ``${env...}`` replaced; errors name file and key."""
    if isinstance(node, dict):
        return {k: substitute_env(v, env, source, (*path, k)) for k, v in node.items()}
    if isinstance(node, list):
        return [substitute_env(v, env, source, (*path, i)) for i, v in enumerate(node)]
    if isinstance(node, str) and "${" in node:
        return _substitute_str(node, env, f"{source}: {format_path(path)}")
    return node
