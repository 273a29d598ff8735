"""The plugin manager: discovers plugins through entry points and answers typed questions.

Each entry point in the ``lamina`` group is loaded in isolation: one that fails to import, names
a hook that does not exist or raises inside a hook is reported by name and skipped (fatal with
``LAMINA_STRICT_PLUGINS=1``). ``LAMINA_LOAD_PLUGINS`` (allow-list) and ``LAMINA_DISABLE_PLUGINS``
(deny-list) take comma-separated distribution or entry-point names. ``LAMINA_TRACE_PLUGINS=1``
prints every hook call to stderr. Answers are sorted, so nothing depends on load order.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pluggy
import structlog

from lamina import hookspecs
from lamina.errors import PluginError
from lamina.specs import (
    Api,
    DefaultResource,
    DistributionSpec,
    MiddlewareSpec,
    ProviderSpec,
    ResourceType,
    ResourceVeto,
    RouteSpec,
)

ENTRY_POINT_GROUP = "lamina"
log = structlog.get_logger(__name__)

HOOK_NAMES = sorted(n for n in dir(hookspecs) if n.startswith("lamina_"))


def _env_list(name: str) -> set[str] | None:
    raw = os.environ.get(name)
    if raw is None:
        return None
    return {item.strip().lower() for item in raw.split(",") if item.strip()}


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


@dataclass
class PluginInfo:
    """What ``lamina plugins`` reports about one entry point."""

    name: str
    distribution: str
    version: str
    module: str
    status: str = "loaded"  # loaded | failed | disabled
    error: str | None = None
    hooks: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "module": self.module,
            "status": self.status,
            "error": self.error,
            "hooks": self.hooks,
        }


class PluginManager:
    """A typed facade over pluggy for Lamina's hooks."""

    def __init__(
        self,
        *,
        strict: bool | None = None,
        allow: Iterable[str] | None = None,
        deny: Iterable[str] | None = None,
        trace: bool | None = None,
    ) -> None:
        self.strict = _env_flag("LAMINA_STRICT_PLUGINS") if strict is None else strict
        self.allow = _env_list("LAMINA_LOAD_PLUGINS") if allow is None else {a.lower() for a in allow}
        self.deny = (_env_list("LAMINA_DISABLE_PLUGINS") or set()) if deny is None else {d.lower() for d in deny}
        self.trace = _env_flag("LAMINA_TRACE_PLUGINS") if trace is None else trace
        self.pm = pluggy.PluginManager("lamina")
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self._cache: dict[str, Any] = {}

    # -- loading -------------------------------------------------------------------------------

    def load_entry_points(self) -> PluginManager:
        eps = sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: (_dist_name(ep), ep.name))
        for ep in eps:
            self._load_one(ep)
        return self

    def register(self, module: Any, *, name: str, distribution: str = "", version: str = "") -> None:
        """Register an already-imported plugin object (used for built-in plugins)."""
        info = PluginInfo(name=name, distribution=distribution or name, version=version, module=str(module))
        self._register_checked(module, info)

    def _load_one(self, ep: EntryPoint) -> None:
        dist = _dist_name(ep)
        version = ep.dist.version if ep.dist else ""
        info = PluginInfo(name=ep.name, distribution=dist, version=version, module=ep.value)
        keys = {ep.name.lower(), dist.lower()}
        if (self.allow is not None and not keys & self.allow) or keys & self.deny:
            info.status = "disabled"
            self.plugins[ep.name] = info
            return
        try:
            module = ep.load()
        except Exception as exc:
            self._fail(info, f"import of {ep.value!r} failed: {type(exc).__name__}: {exc}")
            return
        self._register_checked(module, info)

    def _register_checked(self, module: Any, info: PluginInfo) -> None:
        unknown = [
            n for n in dir(module) if n.startswith("lamina_") and callable(getattr(module, n))
            and n not in HOOK_NAMES and _is_hookimpl(getattr(module, n))
        ]
        if unknown:
            hints = []
            for n in unknown:
                close = difflib.get_close_matches(n, HOOK_NAMES, n=1)
                hints.append(f"{n}" + (f" (did you mean {close[0]}?)" if close else ""))
            self._fail(info, "implements unknown hooks: " + ", ".join(hints))
            return
        if info.name in self.plugins and self.plugins[info.name].status == "loaded":
            self._fail(info, f"entry point name {info.name!r} is already used by "
                             f"{self.plugins[info.name].distribution}")
            return
        try:
            self.pm.register(module, name=info.name)
        except Exception as exc:
            self._fail(info, f"registration failed: {exc}")
            return
        info.hooks = sorted(impl.name for impl in self.pm.get_hookcallers(module) or [])
        self.plugins[info.name] = info
        self._cache.clear()

    def _fail(self, info: PluginInfo, reason: str) -> None:
        info.status = "failed"
        info.error = reason
        self.plugins[info.name] = info
        message = (
            f"plugin {info.name!r} from distribution {info.distribution!r} was skipped: {reason}. "
            f"Fix or uninstall it, or set LAMINA_DISABLE_PLUGINS={info.distribution} to silence this."
        )
        if self.strict:
            raise PluginError(message + " (LAMINA_STRICT_PLUGINS=1 makes this fatal)")
        log.warning("plugin_skipped", plugin=info.name, distribution=info.distribution, reason=reason)
        print(f"lamina: warning: {message}", file=sys.stderr)

    # -- calling hooks -------------------------------------------------------------------------

    def call_each(self, hook_name: str, **kwargs: Any) -> list[tuple[PluginInfo, Any]]:
        """Call every implementation of a hook, attributing each result to its plugin.

        A plugin whose hook raises is reported and skipped (fatal in strict mode). Results come
        back sorted by distribution name so callers never see load order.
        """
        caller = getattr(self.pm.hook, hook_name)
        results: list[tuple[PluginInfo, Any]] = []
        for impl in caller.get_hookimpls():
            info = self.plugins.get(impl.plugin_name) or PluginInfo(impl.plugin_name, impl.plugin_name, "", "")
            try:
                args = [kwargs[a] for a in impl.argnames]
                value = impl.function(*args)
            except Exception as exc:
                self._fail(info, f"hook {hook_name} raised {type(exc).__name__}: {exc}")
                self.pm.unregister(name=impl.plugin_name)
                self._cache.clear()
                continue
            if self.trace:
                print(f"lamina: trace: {hook_name}({_fmt_kwargs(kwargs)}) <- {info.distribution}: "
                      f"{_short(value)}", file=sys.stderr)
            if value is not None:
                results.append((info, value))
        results.sort(key=lambda pair: (pair[0].distribution, pair[0].name))
        return results

    def _cached(self, key: str, compute: Any) -> Any:
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    # -- typed facade --------------------------------------------------------------------------

    def provider_specs(self, api: Api | str) -> dict[str, ProviderSpec]:
        """Every provider type of ``api`` by name; a type offered twice fails naming both."""
        api = Api(api)
        return self._cached(f"providers:{api}", lambda: self._collect_providers(api))

    def _collect_providers(self, api: Api) -> dict[str, ProviderSpec]:
        owners: dict[str, str] = {}
        specs: dict[str, ProviderSpec] = {}
        for info, value in self.call_each(hookspecs.API_HOOKS[api.value]):
            for spec in value:
                spec = ProviderSpec.model_validate(spec)
                if spec.api != api:
                    raise PluginError(f"{info.distribution} returned a {spec.api} provider "
                                      f"({spec.provider_type}) from {hookspecs.API_HOOKS[api.value]}")
                if spec.provider_type in owners:
                    raise PluginError(
                        f"provider type {spec.provider_type!r} is offered by two distributions: "
                        f"{owners[spec.provider_type]} and {info.distribution}. Uninstall one, or "
                        f"disable one with LAMINA_DISABLE_PLUGINS=<distribution>."
                    )
                owners[spec.provider_type] = info.distribution
                specs[spec.provider_type] = spec
        return dict(sorted(specs.items()))

    def provider_owner(self, api: Api | str, provider_type: str) -> str | None:
        for info, value in self.call_each(hookspecs.API_HOOKS[Api(api).value]):
            if any(ProviderSpec.model_validate(s).provider_type == provider_type for s in value):
                return info.distribution
        return None

    def all_provider_specs(self) -> dict[Api, dict[str, ProviderSpec]]:
        return {api: self.provider_specs(api) for api in Api}

    def default_resources(self, resource_type: ResourceType | str) -> list[DefaultResource]:
        rtype = ResourceType(resource_type)

        def compute() -> list[DefaultResource]:
            out = []
            for _info, value in self.call_each(hookspecs.RESOURCE_HOOKS[rtype.value]):
                for item in value:
                    res = DefaultResource.model_validate(item)
                    if res.type != rtype:
                        raise PluginError(f"{hookspecs.RESOURCE_HOOKS[rtype.value]} returned a {res.type}")
                    out.append(res)
            return sorted(out, key=lambda r: (r.provider_type, r.identifier))

        return self._cached(f"resources:{rtype}", compute)

    def resource_vetoes(self, resource_type: str, resource: dict) -> list[ResourceVeto]:
        vetoes = []
        for info, value in self.call_each("lamina_validate_resource", resource_type=resource_type,
                                          resource=resource):
            veto = ResourceVeto.model_validate(value)
            vetoes.append(veto.model_copy(update={"plugin": veto.plugin or info.distribution}))
        return vetoes

    def routes(self) -> list[RouteSpec]:
        return self._cached("routes", lambda: sorted(
            (RouteSpec.model_validate(r) for _i, v in self.call_each("lamina_routes") for r in v),
            key=lambda r: (r.path, r.method)))

    def middlewares(self) -> list[MiddlewareSpec]:
        return self._cached("middlewares", lambda: sorted(
            (MiddlewareSpec.model_validate(m) for _i, v in self.call_each("lamina_middlewares") for m in v),
            key=lambda m: (m.order, m.name)))

    def cli_commands(self) -> list[Any]:
        cmds = [c for _i, v in self.call_each("lamina_cli_commands") for c in v]
        return sorted(cmds, key=lambda c: c.name)

    def distributions(self) -> dict[str, DistributionSpec]:
        def compute() -> dict[str, DistributionSpec]:
            out: dict[str, DistributionSpec] = {}
            owners: dict[str, str] = {}
            for info, value in self.call_each("lamina_distributions"):
                for item in value:
                    dist = DistributionSpec.model_validate(item)
                    if dist.name in out:
                        raise PluginError(f"distribution {dist.name!r} is shipped by two distributions: "
                                          f"{owners[dist.name]} and {info.distribution}")
                    owners[dist.name] = info.distribution
                    out[dist.name] = dist
            return dict(sorted(out.items()))

        return self._cached("distributions", compute)

    def contributions(self, plugin_name: str) -> dict[str, Any]:
        """What one plugin contributes: provider types per API, resources, distributions."""
        out: dict[str, Any] = {"providers": {}, "resources": {}, "distributions": []}
        for api, hook in hookspecs.API_HOOKS.items():
            for info, value in self.call_each(hook):
                if info.name == plugin_name:
                    out["providers"][api] = sorted(ProviderSpec.model_validate(s).provider_type for s in value)
        for rtype, hook in hookspecs.RESOURCE_HOOKS.items():
            for info, value in self.call_each(hook):
                if info.name == plugin_name:
                    out["resources"][rtype] = sorted(DefaultResource.model_validate(r).identifier for r in value)
        for info, value in self.call_each("lamina_distributions"):
            if info.name == plugin_name:
                out["distributions"] = sorted(DistributionSpec.model_validate(d).name for d in value)
        return out


def _is_hookimpl(obj: Any) -> bool:
    return hasattr(obj, "lamina_impl")


def _dist_name(ep: EntryPoint) -> str:
    return ep.dist.name if ep.dist is not None else ep.module


def _short(value: Any) -> str:
    if isinstance(value, list):
        names = [getattr(v, "provider_type", None) or getattr(v, "identifier", None)
                 or getattr(v, "name", None) or type(v).__name__ for v in value]
        return "[" + ", ".join(map(str, names)) + "]"
    text = repr(value)
    return text if len(text) < 200 else text[:197] + "..."


def _fmt_kwargs(kwargs: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_short(v)}" for k, v in kwargs.items())


def load_plugin_manager(**kwargs: Any) -> PluginManager:
    """A plugin manager with every installed plugin loaded (environment switches applied)."""
    return PluginManager(**kwargs).load_entry_points()
