"""The ``lamina new-plugin`` command (registered in ``lamina.cli``)."""

from __future__ import annotations

from pathlib import Path

import click

from lamina import scaffold


@click.command("new-plugin")
@click.argument("name")
@click.option(
    "--api",
    type=click.Choice(scaffold.apis()),
    default="inference",
    show_default=True,
    help="The API the provider serves.",
)
@click.option("--provider-type", default=None, help="Default: inline::NAME (remote::NAME for a service).")
@click.option(
    "--output",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Directory to create lamina-NAME in.",
)
def new_plugin(name: str, api: str, provider_type: str | None, output: Path) -> None:
    """Create lamina-NAME: a provider package that installs and passes its conformance kit."""
    try:
        root = scaffold.write(output, name, api, provider_type)
    except (ValueError, FileExistsError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"created {root}")
    click.echo(f'next: cd {root} && pip install -e ".[test]" && pytest')
