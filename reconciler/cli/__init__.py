"""The ``reconciler`` command line.

The only package that imports click and the only place that builds real API
clients and state stores (one factory each, in ``common``). A command body
loads, calls a use case from ``reconciler.commands``, renders, echoes and
returns an exit code; it holds no business logic. One error boundary
(``_Group.main``) prints ``error: ...`` for every ``ReconcilerError`` and click
usage error and exits 1, and Ctrl-C exits 130 with ``Interrupted.``; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import click

from reconciler import __version__
from reconciler.cli.common import Options
from reconciler.cli.plan import apply, plan, show, validate
from reconciler.cli.refresh import import_command, refresh
from reconciler.cli.state import init, state
from reconciler.cli.tools import demo, simulator_command
from reconciler.errors import ApiError, ConfigError, ReconcilerError


class _Group(click.Group):
    """Exit codes by the contract: 0 success, 1 every error (usage errors too)."""

    def main(
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
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            code = 130
        except click.exceptions.Abort as exc:
            # click turns Ctrl-C into Abort: the shell's 128 + SIGINT, no traceback.
            interrupted = isinstance(exc.__cause__, KeyboardInterrupt)
            click.echo("Interrupted." if interrupted else "Aborted.", err=True)
            code = 130 if interrupted else 1
        except click.ClickException as exc:
            exc.show()
            code = 1
        except ConfigError as exc:
            click.echo(str(exc), err=True)
            code = 1
        except ReconcilerError as exc:
            text = exc.describe() if isinstance(exc, ApiError) else str(exc)
            click.echo(f"error: {text}", err=True)
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
    ctx.obj = Options(color=color)


for _command in (
    init,
    validate,
    plan,
    show,
    state,
    apply,
    refresh,
    import_command,
    simulator_command,
    demo,
):
    cli.add_command(_command)


def main() -> None:
    """Console-script entry point."""
    cli.main()
