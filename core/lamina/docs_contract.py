"""Generate the provider contract (docs/provider-contract.md) from the provider Protocols.

The provider Protocol of every API the table serves (``lamina.api_table``) is a provider contract:
its docstring says what a provider of that API must do, and each method's
signature and docstring say what it gets and returns. The reference also documents what every
provider shares (``lamina.providers.base``: the factory's ``ProviderContext`` and the lifecycle of
``ProviderBase``), the errors a provider raises (``lamina.errors``) and every pydantic type a
provider method takes or returns. Nothing here is hand-written about a particular API: the prose
lives in the Protocols' docstrings, so the code and the reference cannot drift apart.

``python -m lamina.docs_gen`` (``hatch run docs``) writes the file with the other references;
``--check`` reports it stale.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import typing
from collections.abc import AsyncIterator, Callable
from typing import Any

from pydantic import BaseModel

FILE = "provider-contract.md"
_SOURCES = (
    "the provider Protocols in core/lamina/apis/, core/lamina/providers/base.py and core/lamina/errors.py"
)


def provider_protocols() -> list[type]:
    """The provider Protocol of every served API, in the API table's order (``lamina.api_table``);
    an API whose providers share another's Protocol is listed once."""
    from lamina.api_table import provider_protocols as table

    found: list[type] = []
    for _api, protocol in table():
        if protocol is not None and protocol not in found:
            found.append(protocol)
    return found


def protocol_methods(protocol: type) -> dict[str, Callable[..., Any]]:
    """The methods a Protocol declares, in declaration order."""
    return {
        name: member
        for name, member in vars(protocol).items()
        if inspect.isfunction(member) and not name.startswith("_")
    }


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    module = importlib.import_module(fn.__module__)
    return typing.get_type_hints(fn, vars(module))


def method_signature(fn: Callable[..., Any]) -> str:
    from lamina.docs_gen import type_name

    hints = _hints(fn)
    params = [
        f"{p.name}: {type_name(hints[p.name])}" if p.name in hints else p.name
        for p in inspect.signature(fn).parameters.values()
    ]
    returns = type_name(hints.get("return", Any))
    return f"async def {fn.__name__}({', '.join(params)}) -> {returns}"


def stream_items(fn: Callable[..., Any]) -> list[Any]:
    """What the method's stream yields (the ``X`` of an ``AsyncIterator[X]`` in its return type)."""
    from lamina.docs_gen import _walk

    out = []
    for tp in _walk(_hints(fn).get("return")):
        if typing.get_origin(tp) is AsyncIterator:
            out.extend(typing.get_args(tp))
    return out


def _models_in(tp: Any) -> list[type[BaseModel]]:
    from lamina.docs_gen import _walk

    return [t for t in _walk(tp) if isinstance(t, type) and issubclass(t, BaseModel)]


def method_types(fn: Callable[..., Any]) -> list[type[BaseModel]]:
    """The pydantic models a method takes or returns, in signature order."""
    found: list[type[BaseModel]] = []
    for tp in _hints(fn).values():
        found += [m for m in _models_in(tp) if m not in found]
    return found


def routes_by_method(protocol: type) -> dict[str, list[str]]:
    """Method name -> the routes served by it: the API Protocols of the same module declare them."""
    from lamina.apis.webmethod import routes_of

    module = importlib.import_module(protocol.__module__)
    out: dict[str, list[str]] = {}
    for obj in vars(module).values():
        if inspect.isclass(obj) and obj.__module__ == module.__name__ and obj is not protocol:
            for decl in routes_of(obj):
                paths = [f"{decl.method} {decl.openapi_path(p)}" for p in decl.paths]
                out.setdefault(decl.name, []).extend(paths)
    return out


def _default(field: Any) -> str:
    """Like the hook reference's, but a factory's value is shown only when it is a fixed empty
    container: a timestamp or a fresh id would make the output differ on every run."""
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        value = field.default_factory()
        return f"`{value!r}`" if value in ([], {}, set(), ()) else "computed when created"
    return f"`{field.default!r}`"


def fields_table(model: type[BaseModel]) -> list[str]:
    from lamina.docs_gen import _cell, _escape, type_name

    rows = ["| Field | Type | Default | Description |", "| --- | --- | --- | --- |"]
    for name, field in model.model_fields.items():
        rows.append(
            f"| `{name}` | `{_cell(type_name(field.annotation))}` | {_default(field)} "
            f"| {_escape(_cell(field.description or ''))} |"
        )
    return rows


def _errors() -> list[type[Exception]]:
    from lamina import errors

    return sorted(
        (
            cls
            for cls in vars(errors).values()
            if inspect.isclass(cls) and issubclass(cls, errors.LaminaError) and cls is not errors.LaminaError
        ),
        key=lambda cls: (cls.status, cls.__name__),
    )


def _lifecycle() -> list[str]:
    from lamina.docs_gen import doc_to_markdown
    from lamina.providers.base import ProviderBase, ProviderContext

    out = ["## Every provider", "", doc_to_markdown(ProviderBase.__doc__ or ""), ""]
    out += [
        "A plugin's `ProviderSpec.factory` names `async def factory(config, deps, context)`: `config` is "
        "the validated `config_class` instance, `deps` maps each `Api` in `api_dependencies` to that API's "
        "router, and `context` is a `ProviderContext`. Subclass `lamina.providers.ProviderBase` for the "
        "lifecycle below.",
        "",
        f"`ProviderContext`: {' '.join((ProviderContext.__doc__ or '').split())}",
        "",
        "| Field | Type |",
        "| --- | --- |",
    ]
    hints = typing.get_type_hints(ProviderContext)
    from lamina.docs_gen import type_name

    out += [f"| `{f.name}` | `{type_name(hints[f.name])}` |" for f in dataclasses.fields(ProviderContext)]
    out.append("")
    for name, fn in vars(ProviderBase).items():
        if inspect.iscoroutinefunction(fn):
            sig = f"async def {name}{inspect.signature(fn)}".replace("'", "")
            out += [f"### `{name}`", "", "```python", sig, "```", ""]
            out += [doc_to_markdown(fn.__doc__ or "(undocumented)"), ""]
    return out


def _errors_section() -> list[str]:
    from lamina.docs_gen import summary

    out = [
        "## Errors",
        "",
        "Raise these (from `lamina.errors`) and the server answers with their status and an error body "
        "naming the message; any other exception is a 500. Each takes `(message, param=None)` (the "
        "request field at fault), except the upstream errors, which take `(provider_id, message)`.",
        "",
        "| Error | Status | Meaning |",
        "| --- | --- | --- |",
    ]
    for cls in _errors():
        out.append(f"| `{cls.__name__}` | {cls.status} | {summary(cls.__doc__) if cls.__doc__ else ''} |")
    return [*out, ""]


def _protocol_section(protocol: type, types: list[type[BaseModel]]) -> list[str]:
    from lamina.docs_gen import doc_to_markdown, type_name

    out = [f"## {protocol.__name__}", "", f"`{protocol.__module__}.{protocol.__name__}`", ""]
    out += [doc_to_markdown(protocol.__doc__ or "(undocumented)"), ""]
    routes = routes_by_method(protocol)
    for name, fn in protocol_methods(protocol).items():
        out += [f"### `{protocol.__name__}.{name}`", "", "```python", method_signature(fn), "```", ""]
        if fn.__doc__:
            out += [doc_to_markdown(fn.__doc__), ""]
        if routes.get(name):
            out += ["Serves: " + ", ".join(f"`{r}`" for r in routes[name]), ""]
        items = stream_items(fn)
        if items:
            out += ["Streams: " + ", ".join(f"`{type_name(i)}`" for i in items), ""]
        for model in method_types(fn):
            if model not in types:
                types.append(model)
    return out


def render() -> str:
    from lamina.docs_gen import _anchor, _header, summary

    protocols = provider_protocols()
    out = [
        _header(_SOURCES),
        "",
        "# Provider contract",
        "",
        "What a provider of each API implements, generated from the provider Protocols of the APIs the "
        "server serves (`lamina.api_table`): every method with its request and return types, what it "
        "streams, which routes reach it, and the rules a provider follows. A provider is the object a "
        "plugin's factory returns; the plugin's hooks ([hooks.md](hooks.md)) say which provider types it "
        "offers, and the HTTP routes ([api.md](api.md)) are what clients call. "
        "`lamina.testing.conformance` has a kit per API that checks a provider against this contract "
        "(see PLUGIN_GUIDE.md).",
        "",
        "## Contents",
        "",
        "- [Every provider](#every-provider)",
        "- [Errors](#errors)",
    ]
    out += [f"- [{p.__name__}]({_anchor(p.__name__)}): {summary(p.__doc__)}" for p in protocols]
    out += ["- [Types](#types)", ""]
    out += _lifecycle()
    out += _errors_section()
    types: list[type[BaseModel]] = []
    for protocol in protocols:
        out += _protocol_section(protocol, types)
    out += [
        "## Types",
        "",
        "The pydantic models provider methods take and return (fields one level deep; `GET "
        "/openapi.json` has every nested schema).",
        "",
    ]
    for model in types:
        out += [f"### {model.__name__}", "", f"`{model.__module__}.{model.__name__}`"]
        if model.__doc__ and model.__doc__ != BaseModel.__doc__:
            out += ["", summary(model.__doc__)]
        out += ["", *fields_table(model), ""]
    return "\n".join(out).rstrip("\n") + "\n"
