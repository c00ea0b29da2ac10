"""Click options shared by several commands, defined once."""

from __future__ import annotations

import click

__all__ = ["set_option", "existing_dir", "existing_file"]

set_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config value, e.g. --set train.epochs=5 --set passion.temperature=2 (repeatable).",
)

existing_dir = click.Path(exists=True, file_okay=False, dir_okay=True, resolve_path=True)
existing_file = click.Path(exists=True, file_okay=True, dir_okay=False, resolve_path=True)
