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

import gc
import importlib
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import click

from reconciler import __version__
from reconciler.errors import ApiError, ConfigError, PlanError, ReconcilerError

#: Every subcommand: its module, its attribute there, and the first paragraph
#: of its help. The command modules pull in the config, state, render and
#: planner packages (most of the start-up time), so ``reconciler --help`` lists
#: the commands from this table and a command's module is imported only when
#: that command runs. tests/test_cli.py checks the table against the commands
#: themselves, so the listing stays byte-identical.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "init": (
        "reconciler.cli.state",
        "init",
        "Create an empty state: a file, or a workspace in a PostgreSQL database.",
    ),
    "validate": (
        "reconciler.cli.plan",
        "validate",
        "Check the declarations at each PATH (directories or YAML files; default: .).",
    ),
    "plan": (
        "reconciler.cli.plan",
        "plan",
        "Show what apply would do, against the state and Cloud-iQ.",
    ),
    "show": (
        "reconciler.cli.plan",
        "show",
        "Show the recorded purchases and pending operations (or a saved plan).",
    ),
    "state": (
        "reconciler.cli.state",
        "state",
        "Inspect and repair the state. Never calls the API.",
    ),
    "apply": (
        "reconciler.cli.apply",
        "apply",
        "Carry out the plan: each seat bought or changed exactly once.",
    ),
    "refresh": (
        "reconciler.cli.refresh",
        "refresh",
        "Read Cloud-iQ back and record what it proves. Never buys.",
    ),
    "import": (
        "reconciler.cli.refresh",
        "import_command",
        "Adopt a customer tenant's existing subscriptions. Never buys.",
    ),
    "simulator": (
        "reconciler.cli.tools",
        "simulator_command",
        "Run the built-in Crayon API simulator on 127.0.0.1 until interrupted.",
    ),
    "demo": (
        "reconciler.cli.tools",
        "demo",
        "Try the whole cycle safely, against the built-in simulator.",
    ),
    "version": (
        "reconciler.cli.tools",
        "version_command",
        "Show the versions of the tool, Python, its dependencies and its formats.",
    ),
}


@dataclass
class Options:
    """What the whole invocation shares: colour, and how its state is named in hints."""

    color: bool | None = None
    #: The options that name the state again in a command we suggest (set once a
    #: command has parsed ``--state``); the error boundary words refusals with them.
    flags: str = ""


class _Group(click.Group):
    """Exit codes (docs/reference/commands.md): 0 success, 1 every error (usage errors
    too), 130 after Ctrl-C."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        given = extra.setdefault("obj", Options())
        options = given if isinstance(given, Options) else Options()
        if args is None:
            args = sys.argv[1:]
        args = [_flag(arg) for arg in args]
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
            click.echo(f"error: {_describe(exc, options.flags)}", err=True)
            code = 1
        if not isinstance(code, int):
            code = 0
        if standalone_mode:
            sys.exit(code)
        return code

    # click.Group keeps its subcommands in ``self.commands``; here that dict
    # fills on demand, and reading the attribute itself (as tools walking the
    # command tree do) loads every command, so it is never incomplete.
    @property  # type: ignore[override]
    def commands(self) -> dict[str, click.Command]:
        for name in COMMANDS:
            self._load(name)
        return self._loaded

    @commands.setter
    def commands(self, value: dict[str, click.Command]) -> None:
        self._loaded = dict(value)

    def _load(self, name: str) -> click.Command | None:
        command = self._loaded.get(name)
        if command is None and name in COMMANDS:
            module, attribute, _ = COMMANDS[name]
            command = getattr(importlib.import_module(module), attribute)
            assert isinstance(command, click.Command)
            self._loaded[name] = command
        return command

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._load(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Stand-ins carrying each command's first help paragraph shorten it
        # exactly as the real command would, without importing its module.
        names = self.list_commands(ctx)
        rows = [(name, click.Command(name, help=COMMANDS[name][2])) for name in names]
        limit = formatter.width - 6 - max(len(name) for name in names)
        with formatter.section("Commands"):
            formatter.write_dl([(name, cmd.get_short_help_str(limit)) for name, cmd in rows])


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _flag(arg: str) -> str:
    """``--refresh=false`` as ``--no-refresh`` (and ``=true`` as ``--refresh``), the way
    Terraform users write it."""
    name, equals, value = arg.partition("=")
    if equals and name == "--refresh":
        if value.lower() in _TRUE:
            return name
        if value.lower() in _FALSE:
            return "--no-refresh"
    return arg


def _describe(exc: ReconcilerError, flags: str) -> str:
    if isinstance(exc, ApiError):
        return exc.describe()
    if type(exc) in (ReconcilerError, PlanError):
        return str(exc)  # plain messages need no renderer (and --help stays light)
    from reconciler.render.problems import describe

    return describe(exc, flags=flags)


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
    if not isinstance(ctx.obj, Options):
        ctx.obj = Options()
    if no_color or os.environ.get("NO_COLOR"):
        ctx.obj.color = False


def main() -> None:
    """Console-script entry point."""
    # A run builds its declarations, state and plan as many small objects that live
    # until it exits, and makes next to no reference cycles. The cycle collector would
    # walk them over and over as they grow (half the time of validating 50,000
    # purchases, a tenth of planning 10,000 against as many recorded), so it stays off
    # until a command starts talking to the API (``common.make_client``).
    gc.freeze()
    gc.disable()
    cli.main()
