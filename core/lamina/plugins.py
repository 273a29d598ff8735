"""The plugin manager: discovers plugins through entry points and answers typed questions.

Each entry point in the ``lamina`` group is loaded in isolation: one that fails to import, names
a hook that does not exist or raises inside a hook is reported by name and skipped (fatal with
``LAMINA_STRICT_PLUGINS=1``). ``LAMINA_LOAD_PLUGINS`` (allow-list) and ``LAMINA_DISABLE_PLUGINS``
(deny-list) take comma-separated distribution or entry-point names. ``LAMINA_TRACE_PLUGINS=1``
prints every hook call to stderr. Answers are sorted, so nothing depends on load order.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import Distribution, EntryPoint, entry_points
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pluggy
import structlog
from pydantic import BaseModel, ValidationError

from lamina import hookspecs
from lamina.errors import PluginError, describe_validation_error
from lamina.specs import (
    Api,
    DefaultResource,
    DistributionSpec,
    JobExecutorSpec,
    MiddlewareSpec,
    ProviderSpec,
    ResourceType,
    ResourceVeto,
    RouteSpec,
)

ENTRY_POINT_GROUP = "lamina"
log = structlog.get_logger(__name__)

HOOK_NAMES = sorted(n for n in dir(hookspecs) if n.startswith("lamina_"))


def _norm(name: str) -> str:
    """Distribution and entry-point names compare like pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name.strip()).lower()


def _env_list(name: str) -> set[str] | None:
    raw = os.environ.get(name)
    if raw is None:
        return None
    return {_norm(item) for item in raw.split(",") if item.strip()}


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


@dataclass
class PluginInfo:
    """What ``lamina plugins`` reports about one entry point."""

    name: str
    distribution: str
    version: str
    module: str
    # Where the distribution came from: its project directory when installed editable, else the
    # directory it is installed in (site-packages, or a --target directory on PYTHONPATH).
    path: str = ""
    editable: bool = False
    status: str = "loaded"  # loaded | failed | disabled
    error: str | None = None
    hooks: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "module": self.module,
            "path": self.path,
            "editable": self.editable,
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
        self.allow = _env_list("LAMINA_LOAD_PLUGINS") if allow is None else {_norm(a) for a in allow}
        self.deny = (
            (_env_list("LAMINA_DISABLE_PLUGINS") or set()) if deny is None else {_norm(d) for d in deny}
        )
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
        # A name in the allow- or deny-list that matches nothing is almost always a typo.
        known = {_norm(n) for ep in eps for n in (ep.name, _dist_name(ep))}
        lists = (("LAMINA_LOAD_PLUGINS", self.allow or set()), ("LAMINA_DISABLE_PLUGINS", self.deny))
        for var, names in lists:
            for unknown in sorted(names - known):
                print(
                    f"lamina: warning: {var} names {unknown!r}, which is not an installed plugin "
                    f"(installed: {', '.join(sorted({_dist_name(ep) for ep in eps})) or 'none'})",
                    file=sys.stderr,
                )
        return self

    def register(self, module: Any, *, name: str, distribution: str = "", version: str = "") -> None:
        """Register an already-imported plugin object (used for built-in plugins)."""
        info = PluginInfo(
            name=name,
            distribution=distribution or name,
            version=version,
            module=getattr(module, "__name__", None) or type(module).__qualname__,
        )
        self._register_checked(module, info)

    def _load_one(self, ep: EntryPoint) -> None:
        dist = _dist_name(ep)
        version = ep.dist.version if ep.dist else ""
        path, editable = _origin(ep.dist)
        info = PluginInfo(
            name=ep.name, distribution=dist, version=version, module=ep.value, path=path, editable=editable
        )
        keys = {_norm(ep.name), _norm(dist)}
        if (self.allow is not None and not keys & self.allow) or keys & self.deny:
            info.status = "disabled"
            self._record(info)
            return
        try:
            module = ep.load()
        except (Exception, SystemExit) as exc:  # a plugin calling sys.exit() must not stop lamina
            self._fail(info, f"import of {ep.value!r} failed: {type(exc).__name__}: {exc}")
            return
        self._register_checked(module, info)

    def _register_checked(self, module: Any, info: PluginInfo) -> None:
        # Every attribute marked @hookimpl must name a hook: pluggy itself would silently accept
        # a misspelled one (as a hook nobody calls), however it is spelled.
        # Lamina calls each implementation itself (to attribute and check every result), so pluggy's
        # wrappers would never run as wrappers: refuse them rather than misbehave.
        unknown, wrappers = [], []
        for attr in dir(module):
            try:
                opts = self.pm.parse_hookimpl_opts(module, attr)
            except Exception:
                opts = None
            hook = (opts.get("specname") or attr) if opts is not None else None
            if hook is not None and hook not in HOOK_NAMES:
                unknown.append(hook)
            elif hook is not None and (opts.get("hookwrapper") or opts.get("wrapper")):
                wrappers.append(hook)
        if wrappers:
            self._fail(
                info, f"implements {', '.join(wrappers)} as a hook wrapper, which Lamina does not support"
            )
            return
        if unknown:
            hints = []
            for n in unknown:
                close = difflib.get_close_matches(n, HOOK_NAMES, n=1)
                hints.append(f"{n}" + (f" (did you mean {close[0]}?)" if close else ""))
            self._fail(info, "implements unknown hooks: " + ", ".join(hints))
            return
        if info.name in self.plugins and self.plugins[info.name].status == "loaded":
            self._fail(
                info,
                f"entry point name {info.name!r} is already used by {self.plugins[info.name].distribution}",
            )
            return
        try:
            self.pm.register(module, name=info.name)
        except Exception as exc:
            # pluggy before 1.7 leaves a plugin whose validation failed half registered.
            if self.pm.get_plugin(info.name) is module:
                self.pm.unregister(module)
            self._fail(info, f"registration failed: {exc}")
            return
        info.hooks = sorted(impl.name for impl in self.pm.get_hookcallers(module) or [])
        previous = self.plugins.get(info.name)
        if previous is not None and previous is not info:  # a disabled or failed namesake: keep it listed
            self.plugins[f"{previous.name} ({previous.distribution})"] = previous
        self.plugins[info.name] = info
        self._cache.clear()

    def _record(self, info: PluginInfo) -> None:
        """Keep ``info``, without hiding another distribution's plugin of the same entry-point name."""
        current = self.plugins.get(info.name)
        key = info.name if current is None or current is info else f"{info.name} ({info.distribution})"
        self.plugins[key] = info

    def _fail(self, info: PluginInfo, reason: str) -> None:
        info.status = "failed"
        info.error = reason
        self._record(info)
        fix = f"Fix or uninstall it, or set LAMINA_DISABLE_PLUGINS={info.distribution}"
        if self.strict:
            raise PluginError(
                f"plugin {info.name!r} from distribution {info.distribution!r} is broken: "
                f"{reason}. {fix} (LAMINA_STRICT_PLUGINS=1 makes a broken plugin fatal)."
            )
        log.warning("plugin_skipped", plugin=info.name, distribution=info.distribution, reason=reason)
        print(
            f"lamina: warning: plugin {info.name!r} from distribution {info.distribution!r} was skipped: "
            f"{reason}. {fix} to silence this.",
            file=sys.stderr,
        )

    # -- calling hooks -------------------------------------------------------------------------

    def call_each(
        self, hook_name: str, *, convert: Callable[[Any], Any] | None = None, **kwargs: Any
    ) -> list[tuple[PluginInfo, Any]]:
        """Call every implementation of a hook, attributing each result to its plugin.

        ``convert`` validates a non-None result (raising ``ValueError``, ``TypeError`` or pydantic's
        ``ValidationError`` on a bad one) and returns what callers get. A plugin whose hook raises or
        returns a bad value is reported and skipped (fatal in strict mode). Results come back sorted
        by distribution name so callers never see load order.
        """
        caller = getattr(self.pm.hook, hook_name)
        results: list[tuple[PluginInfo, Any]] = []
        for impl in caller.get_hookimpls():
            name = impl.plugin_name
            info = self.plugins.get(name) or PluginInfo(name, name, "", "")
            try:
                args = [kwargs[a] for a in impl.argnames]
                value = impl.function(*args)
            except Exception as exc:
                self._drop(info, name, f"hook {hook_name} raised {type(exc).__name__}: {exc}")
                continue
            if value is not None and convert is not None:
                try:
                    value = convert(value)
                except (ValueError, TypeError) as exc:  # ValidationError is a ValueError
                    self._drop(info, name, f"hook {hook_name} returned an invalid value: {_explain(exc)}")
                    continue
            if self.trace:
                print(
                    f"lamina: trace: {hook_name}({_fmt_kwargs(kwargs)}) <- {info.distribution}: "
                    f"{_short(value)}",
                    file=sys.stderr,
                )
            if value is not None:
                results.append((info, value))
        results.sort(key=lambda pair: (pair[0].distribution, pair[0].name))
        return results

    def _drop(self, info: PluginInfo, plugin_name: str, reason: str) -> None:
        self._fail(info, reason)
        self.pm.unregister(name=plugin_name)
        self._cache.clear()

    def _cached(self, key: str, compute: Any) -> Any:
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    # -- typed facade --------------------------------------------------------------------------

    def provider_specs(self, api: Api | str) -> dict[str, ProviderSpec]:
        """Every provider type of ``api`` by name; a type offered twice fails naming both."""
        api = Api(api)
        return self._cached(f"providers:{api}", lambda: self._collect_providers(api))

    def _provider_list(self, api: Api) -> Callable[[Any], list[ProviderSpec]]:
        def convert(value: Any) -> list[ProviderSpec]:
            specs = _records(value, ProviderSpec)
            for spec in specs:
                if spec.api != api:
                    raise ValueError(
                        f"{spec.provider_type} is a {spec.api.value} provider; return it from "
                        f"{hookspecs.API_HOOKS[spec.api.value]}"
                    )
            return specs

        return convert

    def _api_results(self, api: Api) -> list[tuple[PluginInfo, list[ProviderSpec]]]:
        return self.call_each(hookspecs.API_HOOKS[api.value], convert=self._provider_list(api))

    def _resource_results(self, rtype: ResourceType) -> list[tuple[PluginInfo, list[DefaultResource]]]:
        def convert(value: Any) -> list[DefaultResource]:
            resources = _records(value, DefaultResource)
            for res in resources:
                if res.type != rtype:
                    raise ValueError(
                        f"{res.identifier} is a {res.type.value}; return it from "
                        f"{hookspecs.RESOURCE_HOOKS[res.type.value]}"
                    )
            return resources

        return self.call_each(hookspecs.RESOURCE_HOOKS[rtype.value], convert=convert)

    def _collect_providers(self, api: Api) -> dict[str, ProviderSpec]:
        owners: dict[str, str] = {}
        specs: dict[str, ProviderSpec] = {}
        for info, value in self._api_results(api):
            for spec in value:
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
        for info, value in self._api_results(Api(api)):
            if any(s.provider_type == provider_type for s in value):
                return info.distribution
        return None

    def all_provider_specs(self) -> dict[Api, dict[str, ProviderSpec]]:
        return {api: self.provider_specs(api) for api in Api}

    def default_resources(self, resource_type: ResourceType | str) -> list[DefaultResource]:
        rtype = ResourceType(resource_type)

        def compute() -> list[DefaultResource]:
            out = [res for _info, value in self._resource_results(rtype) for res in value]
            return sorted(out, key=lambda r: (r.provider_type, r.identifier))

        return self._cached(f"resources:{rtype}", compute)

    def resource_vetoes(self, resource_type: str, resource: dict) -> list[ResourceVeto]:
        vetoes = []
        for info, veto in self.call_each(
            "lamina_validate_resource",
            convert=ResourceVeto.model_validate,
            resource_type=resource_type,
            resource=resource,
        ):
            vetoes.append(veto.model_copy(update={"plugin": veto.plugin or info.distribution}))
        return vetoes

    def routes(self) -> list[RouteSpec]:
        return self._cached(
            "routes",
            lambda: sorted(
                (r for _i, v in self.call_each("lamina_routes", convert=_list_of(RouteSpec)) for r in v),
                key=lambda r: (r.path, r.method),
            ),
        )

    def middlewares(self) -> list[MiddlewareSpec]:
        return self._cached(
            "middlewares",
            lambda: sorted(
                (
                    m
                    for _i, v in self.call_each("lamina_middlewares", convert=_list_of(MiddlewareSpec))
                    for m in v
                ),
                key=lambda m: (m.order, m.name),
            ),
        )

    def job_executors(self) -> dict[str, JobExecutorSpec]:
        """Every job executor plugins offer, by name; a name offered twice (or ``inline``) fails, naming
        both offerers."""

        def compute() -> dict[str, JobExecutorSpec]:
            out: dict[str, JobExecutorSpec] = {}
            owners: dict[str, str] = {"inline": "the core"}
            for info, value in self.call_each("lamina_job_executors", convert=_list_of(JobExecutorSpec)):
                for spec in value:
                    if spec.name in owners:
                        raise PluginError(
                            f"job executor {spec.name!r} is offered by two distributions: "
                            f"{owners[spec.name]} and {info.distribution}. Uninstall one, or disable one "
                            f"with LAMINA_DISABLE_PLUGINS=<distribution>."
                        )
                    owners[spec.name] = info.distribution
                    out[spec.name] = spec
            return dict(sorted(out.items()))

        return self._cached("job_executors", compute)

    def cli_commands(self) -> list[Any]:
        cmds = [c for _i, v in self.call_each("lamina_cli_commands", convert=_click_commands) for c in v]
        return sorted(cmds, key=lambda c: c.name)

    def distributions(self) -> dict[str, DistributionSpec]:
        def compute() -> dict[str, DistributionSpec]:
            out: dict[str, DistributionSpec] = {}
            owners: dict[str, str] = {}
            for info, value in self.call_each("lamina_distributions", convert=_list_of(DistributionSpec)):
                for dist in value:
                    if dist.name in out:
                        raise PluginError(
                            f"distribution {dist.name!r} is shipped by two distributions: "
                            f"{owners[dist.name]} and {info.distribution}"
                        )
                    owners[dist.name] = info.distribution
                    out[dist.name] = dist
            return dict(sorted(out.items()))

        return self._cached("distributions", compute)

    def contributions(self, plugin_name: str) -> dict[str, Any]:
        """What one plugin contributes: provider types per API, resources, distributions."""
        out: dict[str, Any] = {"providers": {}, "resources": {}, "distributions": []}
        for api in Api:
            for info, value in self._api_results(api):
                if info.name == plugin_name:
                    out["providers"][api.value] = sorted(s.provider_type for s in value)
        for rtype in ResourceType:
            for info, value in self._resource_results(rtype):
                if info.name == plugin_name:
                    out["resources"][rtype.value] = sorted(r.identifier for r in value)
        for info, value in self.call_each("lamina_distributions", convert=_list_of(DistributionSpec)):
            if info.name == plugin_name:
                out["distributions"] = sorted(d.name for d in value)
        return out


def _records(value: Any, model: type[BaseModel]) -> list[Any]:
    """A hook's list of records (instances or their dicts), validated."""
    if isinstance(value, (str, bytes, dict, BaseModel)) or not isinstance(value, Iterable):
        raise TypeError(f"expected a list of {model.__name__}, got {type(value).__name__}")
    return [model.model_validate(item) for item in value]


def _list_of(model: type[BaseModel]) -> Callable[[Any], list[Any]]:
    return lambda value: _records(value, model)


def _click_commands(value: Any) -> list[Any]:
    import click

    if isinstance(value, (str, bytes, dict)) or not isinstance(value, Iterable):
        raise TypeError(f"expected a list of click commands, got {type(value).__name__}")
    commands = list(value)
    for command in commands:
        if not isinstance(command, click.Command):
            raise TypeError(f"expected click commands, got {type(command).__name__} {command!r}")
    return commands


def _explain(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return describe_validation_error(exc, top=exc.title)
    return str(exc)


def _dist_name(ep: EntryPoint) -> str:
    return ep.dist.name if ep.dist is not None else ep.module


def _origin(dist: Distribution | None) -> tuple[str, bool]:
    """(path, editable): an editable install's project directory (PEP 610's direct_url.json says
    so), else the directory the distribution is installed in."""
    if dist is None:
        return "", False
    try:
        direct = json.loads(dist.read_text("direct_url.json") or "{}")
    except (OSError, ValueError):  # unreadable or not JSON: report where it is installed
        direct = {}
    url = direct.get("url", "") if isinstance(direct, dict) else ""
    if isinstance(direct, dict) and (direct.get("dir_info") or {}).get("editable") and url:
        parsed = urlparse(url)
        return (unquote(parsed.path) if parsed.scheme == "file" else url), True
    return str(Path(str(dist.locate_file(""))).resolve()), False


def _short(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_label(v) for v in value) + "]"
    text = repr(value)
    return text if len(text) < 200 else text[:197] + "..."


def _label(record: Any) -> str:
    """A record's name in a trace line: the identifier of a resource, the type of a provider, ..."""
    if isinstance(record, RouteSpec):
        return f"{record.method} {record.path}"
    for attr in ("identifier", "provider_type", "name"):
        value = getattr(record, attr, None)
        if isinstance(value, str) and value:
            return value
    return type(record).__name__


def _fmt_kwargs(kwargs: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_short(v)}" for k, v in kwargs.items())


def load_plugin_manager(**kwargs: Any) -> PluginManager:
    """A plugin manager with every installed plugin loaded (environment switches applied)."""
    return PluginManager(**kwargs).load_entry_points()
