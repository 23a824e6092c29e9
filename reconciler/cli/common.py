"""What every command shares: options, colour, prompts, and the two factories.

``open_store`` is the one place a state store is built from ``--state`` and
``make_client`` the one place an API client is built from the environment.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import click

from reconciler import render
from reconciler.model import Event
from reconciler.state import StateStore
from reconciler.state import open_store as _open_store

if TYPE_CHECKING:
    from reconciler.api.client import CrayonClient


@dataclass
class Options:
    color: bool | None


PATH = click.argument("path", default=".", type=click.Path(path_type=str), metavar="[PATH]")

STATE = click.option(
    "--state",
    "state_path",
    default=render.DEFAULT_STATE,
    envvar="RECONCILER_STATE",
    show_default=True,
    type=click.Path(dir_okay=False, path_type=str),
    help="State file (also RECONCILER_STATE).",
)

LEGACY = click.option(
    "--legacy-endpoints",
    is_flag=True,
    help="Use /api/v1/assets/verify and /api/v1/assets/checkout instead of purchaserequest.",
)

YES = click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")


def _set_no_color(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.find_root().obj = Options(color=False)


NO_COLOR = click.option(
    "--no-color",
    is_flag=True,
    expose_value=False,
    callback=_set_no_color,
    help="Plain output without colour (also set by NO_COLOR).",
)


def use_color(ctx: click.Context) -> bool:
    options: Options = ctx.find_root().obj
    return options.color is not False and sys.stdout.isatty()


def warn(message: str) -> None:
    click.echo(f"warning: {message}", err=True)


def confirm(yes: bool) -> Callable[[str], None]:
    """A confirmation that asks on a terminal (unless ``yes``) and aborts on 'no'."""

    def ask(question: str) -> None:
        if yes or not sys.stdin.isatty():
            return
        if not click.confirm(question, default=False, err=True):
            raise click.exceptions.Abort()

    return ask


def open_store(state_path: str) -> StateStore:
    """The state store ``--state`` names."""
    return _open_store(state_path)


def make_client(legacy_endpoints: bool) -> CrayonClient:
    """An API client configured from the environment (CONTRACT section 4)."""
    # Deferred: requests is slow to import and only commands that call the API need it.
    from reconciler.api.client import CrayonClient
    from reconciler.api.settings import ApiSettings

    settings = ApiSettings.from_env(os.environ, legacy_endpoints=legacy_endpoints)
    return CrayonClient(settings)


def progress(color: bool) -> Callable[[Event], None]:
    """Apply's progress lines: one per finished change, its errors on stderr."""

    def on_event(event: Event) -> None:
        if event.kind == "finished" and event.result is not None:
            click.echo(render.apply_progress(event.result, color=color), color=color)
            for line in event.result.errors:
                click.echo(f"    {line}", err=True)

    return on_event
