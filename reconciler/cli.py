"""The ``reconciler`` command line.

The only module that imports click and the only place that builds real API
clients and state stores. A command body loads, plans, renders, echoes and
returns an exit code; it holds no business logic. One error boundary
(``_Group.main``) prints ``error: ...`` for every ``ReconcilerError`` and click
usage error and exits 1; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import click

from reconciler import __version__, config
from reconciler.errors import ConfigError, ReconcilerError


@dataclass
class _Options:
    color: bool | None


class _Group(click.Group):
    """Exit codes by the contract: 0 success, 1 every error (usage errors too)."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            code = super().main(
                args, prog_name or "reconciler", complete_var, standalone_mode=False, **extra
            )
        except click.exceptions.Abort:
            click.echo("Aborted.", err=True)
            code = 1
        except click.ClickException as exc:
            exc.show()
            code = 1
        except ConfigError as exc:
            click.echo(str(exc), err=True)
            code = 1
        except ReconcilerError as exc:
            describe = getattr(exc, "describe", None)
            click.echo(f"error: {describe() if describe else exc}", err=True)
            code = 1
        if not isinstance(code, int):
            code = 0
        if standalone_mode:
            sys.exit(code)
        return code


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="reconciler")
@click.option(
    "--no-color", is_flag=True, help="Plain output without colour (also set by NO_COLOR)."
)
@click.pass_context
def cli(ctx: click.Context, no_color: bool) -> None:
    """Declarative, exactly-once licence purchasing through the Crayon API.

    Declare the licences you want in YAML, review `reconciler plan`, then
    `reconciler apply` buys the difference, once.
    """
    color = False if (no_color or os.environ.get("NO_COLOR")) else None
    ctx.obj = _Options(color=color)


_PATH = click.argument(
    "path",
    default=".",
    type=click.Path(path_type=str),
    metavar="[PATH]",
)


@cli.command()
@_PATH
def validate(path: str) -> int:
    """Check the declarations at PATH (a directory or one YAML file).

    Schema and semantic checks only: reads no state and calls no API.
    """
    declarations = config.load(path)
    count, files = len(declarations.purchases), len(declarations.files)
    click.echo(
        f"OK: {count} purchase{'s' if count != 1 else ''} "
        f"in {files} file{'s' if files != 1 else ''}"
    )
    return 0


def main() -> None:
    """Console-script entry point."""
    cli.main()
