"""The ``lamina`` command: run, plugins, routes, distributions (plus commands plugins add)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from lamina import __version__
from lamina.errors import ConfigError, PluginError

_PLUGIN_ENV = (
    "LAMINA_LOAD_PLUGINS",
    "LAMINA_DISABLE_PLUGINS",
    "LAMINA_STRICT_PLUGINS",
    "LAMINA_TRACE_PLUGINS",
)
_loaded: dict[tuple[str | None, ...], object] = {}


def _pm():
    """The plugin manager, loaded once per process (each load reports broken plugins again)."""
    from lamina.plugins import load_plugin_manager

    key = tuple(os.environ.get(var) for var in _PLUGIN_ENV)  # `--env` may change these
    if key not in _loaded:
        try:
            _loaded[key] = load_plugin_manager()
        except PluginError as exc:
            raise click.ClickException(str(exc)) from None
    return _loaded[key]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lamina")
def cli() -> None:
    """Lamina: an open LLM application server (Llama Stack and OpenAI compatible)."""


def _parse_env(pairs: tuple[str, ...]) -> dict[str, str]:
    env = dict(os.environ)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--env")
        env[key] = value
        os.environ[key] = value  # providers may read their own variables too
    return env


def load_config_or_distribution(target: str | None, env: dict[str, str], pm):
    """A run.yaml path, an installed distribution's name, or (None) the default distribution."""
    from lamina.config import load_run_config, load_run_config_text

    distributions = pm.distributions()
    if target is None:
        defaults = [d for d in distributions.values() if d.default]
        if not defaults:
            names = ", ".join(distributions)
            installed = f"installed distributions: {names}" if names else "no distribution is installed"
            raise click.UsageError(
                "no default distribution is installed, so `lamina run` needs a run config: "
                f"`lamina run path/to/run.yaml` or `lamina run DISTRIBUTION` ({installed})."
            )
        dist = defaults[0]
        return load_run_config_text(dist.run_config, source=f"distribution {dist.name}", env=env)
    path = Path(target)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return load_run_config(path, env=env)
    if target in distributions:
        return load_run_config_text(
            distributions[target].run_config, source=f"distribution {target}", env=env
        )
    raise click.UsageError(
        f"{target!r} is neither a run config file nor an installed distribution "
        f"(installed: {', '.join(distributions) or 'none'})"
    )


@cli.command()
@click.argument("config", required=False)
@click.option("--port", type=int, default=None, help="Port to listen on (default: server.port, 8321).")
@click.option(
    "--host",
    default=None,
    help="Address to bind (default: server.host, else 127.0.0.1; 0.0.0.0 exposes the server).",
)
@click.option("--env", "env_pairs", multiple=True, metavar="KEY=VALUE", help="Set a variable for ${env.X}.")
def run(config: str | None, port: int | None, host: str | None, env_pairs: tuple[str, ...]) -> None:
    """Serve a run config (CONFIG.yaml) or a distribution (by name; default: the local one)."""
    from lamina.api_table import served_apis
    from lamina.config import check_settings_are_enforced
    from lamina.logging import configure_logging
    from lamina.server.app import run_server
    from lamina.stack import Stack

    configure_logging()
    env = _parse_env(env_pairs)
    pm = _pm()
    try:
        run_config = load_config_or_distribution(config, env, pm)
        stack = Stack.build(run_config, pm)
        check_settings_are_enforced(
            run_config, {api.value for api in served_apis()}, [(r.where, r.config) for r in stack.order]
        )
    except (ConfigError, PluginError) as exc:
        raise click.ClickException(str(exc)) from None
    env_port = os.environ.get("LAMINA_PORT")
    chosen_port = port if port is not None else int(env_port) if env_port else run_config.server.port
    try:
        run_server(stack, host=host or run_config.server.host, port=chosen_port)
    except (ConfigError, PluginError) as exc:
        raise click.ClickException(str(exc)) from None


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def plugins(as_json: bool) -> None:
    """List installed plugins, their versions, and what each contributes."""
    pm = _pm()
    # Asking for contributions calls every hook, which may drop a plugin whose hook fails: ask first.
    contributions = {name: pm.contributions(name) for name in list(pm.plugins)}
    rows = []
    for name, info in sorted(pm.plugins.items()):
        row = info.to_dict()
        row.update(
            contributions.get(name, {})
            if info.status == "loaded"
            else {"providers": {}, "resources": {}, "distributions": []}
        )
        rows.append(row)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        _fail_on_broken(rows)
        return
    if not rows:
        click.echo("no plugins installed")
    for row in rows:
        click.echo(f"{row['distribution']} {row['version']} ({row['name']}): {row['status']}")
        if row["path"]:
            click.echo(f"  from: {row['path']}" + (" (editable)" if row["editable"] else ""))
        if row["error"]:
            click.echo(f"  error: {row['error']}")
        for api, types in row["providers"].items():
            click.echo(f"  {api}: {', '.join(types)}")
        for rtype, ids in row["resources"].items():
            click.echo(f"  {rtype} resources: {', '.join(ids)}")
        if row["distributions"]:
            click.echo(f"  distributions: {', '.join(row['distributions'])}")
        if row["hooks"]:
            click.echo(f"  hooks: {', '.join(row['hooks'])}")
    _fail_on_broken(rows)


def _fail_on_broken(rows: list[dict]) -> None:
    """Exit 1 naming the plugins that failed to load: skipped by `lamina run`, a failure when asked."""
    failed = [row["distribution"] for row in rows if row["status"] == "failed"]
    if failed:
        raise click.ClickException(
            f"{len(failed)} plugin(s) failed to load: {', '.join(failed)} (the error of each is listed); "
            f"fix or uninstall them, or disable them with LAMINA_DISABLE_PLUGINS={','.join(failed)}"
        )


@cli.command()
@click.argument("config", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def routes(config: str | None, as_json: bool) -> None:
    """List the HTTP routes a run config (default: the default distribution) would serve."""
    from lamina.apis.webmethod import routes_of
    from lamina.stack import Stack

    pm = _pm()
    try:
        stack = Stack.build(load_config_or_distribution(config, dict(os.environ), pm), pm)
    except (ConfigError, PluginError) as exc:
        raise click.ClickException(str(exc)) from None
    rows = []
    for protocol, _impl, types in stack.api_impls():
        for decl in routes_of(protocol):
            for path in decl.paths:
                rows.append(
                    {
                        "method": decl.method,
                        "route": decl.openapi_path(path),
                        "api": protocol.__name__,
                        "provider_types": types,
                        "summary": decl.summary,
                    }
                )
    rows.sort(key=lambda r: (r["route"], r["method"]))
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        click.echo(f"{r['method']:<7} {r['route']:<50} {r['summary']}")


@cli.group(invoke_without_command=True)
@click.pass_context
def distributions(ctx: click.Context) -> None:
    """List installed distributions with their providers."""
    if ctx.invoked_subcommand is not None:
        return
    dists = _pm().distributions()
    if not dists:
        click.echo("no distributions installed")
    for name, dist in dists.items():
        mark = " (default)" if dist.default else ""
        click.echo(f"{name}{mark}: {dist.description}")
        for api, types in dist.providers().items():
            click.echo(f"  {api}: {', '.join(types)}")


@distributions.command("show")
@click.argument("name")
def distributions_show(name: str) -> None:
    """Print a distribution's run config, to copy and edit."""
    dists = _pm().distributions()
    if name not in dists:
        raise click.ClickException(f"no distribution {name!r}; installed: {', '.join(dists) or 'none'}")
    click.echo(dists[name].run_config.rstrip("\n"))


from lamina.scaffold.command import new_plugin  # noqa: E402 - the template command, no heavy imports

cli.add_command(new_plugin)


def main() -> None:
    try:
        _main()
    except KeyboardInterrupt:  # Ctrl-C while plugins load or the server runs: no traceback
        sys.exit(130)


def _main() -> None:
    from lamina.logging import configure_logging

    configure_logging()  # to stderr: stdout is for output such as `lamina plugins --json`
    pm = None
    try:
        pm = _pm()
    except click.ClickException:
        pm = None
    if pm is not None:
        for command in pm.cli_commands():
            if command.name not in cli.commands:
                cli.add_command(command)
    cli(standalone_mode=True)


if __name__ == "__main__":
    main()
