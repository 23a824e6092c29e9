"""What every command shares: options, colour, the console, prompts, and the two
factories.

``StateRef.open`` is the one place a state store is built from ``--state`` and
``--workspace``, ``make_client`` the one place an API client is built from the
environment, and ``approve`` the one place a run asks for approval.
"""

from __future__ import annotations

import functools
import gc
import os
import re
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import click

from reconciler import render
from reconciler.cli import Options
from reconciler.errors import PlanError, ReconcilerError
from reconciler.model import Declarations, is_address_segment
from reconciler.state import StateStore, backend_for
from reconciler.state import open_store as _open_store
from reconciler.state.locking import LockHolder

if TYPE_CHECKING:
    from reconciler.api.client import CrayonClient
    from reconciler.outcomes import Repair


@dataclass(frozen=True)
class ClickConsole:
    """The views' ``Console`` over click: stdout and stderr, colour only on a terminal."""

    color: bool = False
    #: Send what would go to stdout to stderr (``apply --json`` keeps stdout for JSON).
    quiet_stdout: bool = False

    def out(self, text: str, *, nl: bool = True) -> None:
        click.echo(text, nl=nl, color=self.color, err=self.quiet_stdout)

    def err(self, text: str) -> None:
        click.echo(text, err=True)


def console(ctx: click.Context, *, machine: bool = False) -> ClickConsole:
    """The console of a command; ``machine`` output has no colour."""
    return ClickConsole(color=use_color(ctx) and not machine)


PATH = click.argument("path", default=".", type=click.Path(path_type=str), metavar="[PATH]")

# Here rather than in ``refresh``, whose imports (the Cloud-iQ reads, import) ``plan``
# and ``apply`` pay for only when they read Cloud-iQ.
REFRESH = click.option(
    "--refresh/--no-refresh",
    default=None,
    help="Read Cloud-iQ first: the seats each address has, what the API shows of pending "
    "operations, subscriptions no address owns. The default for apply, and for plan when "
    "the CRAYON_* credentials are set; --no-refresh (or --refresh=false) plans against "
    "the state alone.",
)


def credentials_configured() -> bool:
    """Whether every credential variable the API needs is set (plan then reads Cloud-iQ)."""
    from reconciler.api.settings import CREDENTIAL_VARIABLES

    return all(os.environ.get(name, "").strip() for name in CREDENTIAL_VARIABLES)


_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)?")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


if TYPE_CHECKING:
    _FloatParam = click.ParamType[float]
else:  # click before 8.2 has no subscriptable ParamType
    _FloatParam = click.ParamType


class Duration(_FloatParam):
    """``30s``, ``5m``, ``1h``, ``250ms`` or plain seconds, as seconds."""

    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float | int):
            return float(value)
        found = _DURATION.fullmatch(str(value).strip())
        if found is None:
            self.fail(f"{value!r} is not a duration like 30s, 5m or 1h", param, ctx)
        return float(found.group(1)) * _UNITS[found.group(2) or "s"]


if TYPE_CHECKING:
    _DecimalParam = click.ParamType[Decimal]
else:  # click before 8.2 has no subscriptable ParamType
    _DecimalParam = click.ParamType


class Amount(_DecimalParam):
    """A sum of money as a plain decimal (``500``, ``1250.50``): exact, never a float."""

    name = "amount"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> Decimal:
        if isinstance(value, Decimal):
            return value
        text = str(value).strip()
        if not re.fullmatch(r"[0-9]+(\.[0-9]+)?", text):
            self.fail(f"{value!r} is not an amount like 500 or 1250.50", param, ctx)
        return Decimal(text)


@dataclass(frozen=True)
class StateRef:
    """Where the state is, as the user named it (``--state``, ``--workspace``)."""

    path: str
    workspace: str = "default"
    lock_timeout: float = 0.0

    def open(self) -> StateStore:
        """The state store this names; the one place a store is built. While it waits for
        another run's lock (``--lock-timeout``) it says so on stderr every 10 seconds."""
        return _open_store(
            self.path,
            workspace=self.workspace,
            lock_timeout=self.lock_timeout,
            on_wait=_waiting,
        )

    @property
    def flags(self) -> str:
        """The options that name this state again in a command we suggest."""
        shown = backend_for(self.path).show(self.path)  # a database URL without its password
        flags = "" if self.path == render.DEFAULT_STATE else f" --state {shlex.quote(shown)}"
        if self.workspace != "default":
            flags += f" --workspace {self.workspace}"
        return flags

    @property
    def comment_flags(self) -> str:
        """The state options for commands suggested in a pull-request comment: a database
        URL (its host and user) stays out of it; whoever resolves names it in their own
        RECONCILER_STATE."""
        if not backend_for(self.path).comment_safe:
            return f" --workspace {self.workspace}" if self.workspace != "default" else ""
        return self.flags


def _waiting(seconds: float, holder: LockHolder | None) -> None:
    who = f" held by {holder.describe()}" if holder is not None else ""
    click.echo(f"Waiting for the state lock{who} ({seconds:.0f}s so far)...", err=True)


def check_workspace(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not is_address_segment(value):
        raise click.BadParameter(
            f"{value!r} is not a workspace name (lower case letters, digits, '.', '_', '-')",
            ctx,
            param,
        )
    return value


def state_options(*, lock: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--state`` and ``--workspace`` (and with ``lock``, ``--lock-timeout``), passed to
    the command as one ``state: StateRef``."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(command)
        def with_state(
            *args: Any, state_path: str, workspace: str, lock_timeout: float = 0.0, **kwargs: Any
        ) -> Any:
            state = StateRef(state_path, workspace, lock_timeout)
            root = click.get_current_context().find_root()
            if isinstance(root.obj, Options):
                root.obj.flags = state.flags
            return command(*args, state=state, **kwargs)

        if lock:
            with_state = click.option(
                "--lock-timeout",
                type=Duration(),
                default="0s",
                show_default=True,
                help="How long to wait for another run's lock on the state (e.g. 30s, 5m).",
            )(with_state)
        with_state = click.option(
            "--workspace",
            default="default",
            envvar="RECONCILER_WORKSPACE",
            show_default=True,
            callback=check_workspace,
            help="Which state of a PostgreSQL database (also RECONCILER_WORKSPACE).",
        )(with_state)
        return click.option(
            "--state",
            "state_path",
            default=render.DEFAULT_STATE,
            envvar="RECONCILER_STATE",
            show_default=True,
            type=click.Path(dir_okay=False, path_type=str),
            help="State file, or a postgresql:// URL (also RECONCILER_STATE). "
            "Database passwords come from PGPASSWORD or ~/.pgpass.",
        )(with_state)

    return decorate


LEGACY = click.option(
    "--legacy-endpoints",
    is_flag=True,
    help="Use /api/v1/assets/verify and /api/v1/assets/checkout instead of purchaserequest.",
)

YES = click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")


def _set_no_color(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        root = ctx.find_root()
        if isinstance(root.obj, Options):
            root.obj.color = False
        else:
            root.obj = Options(color=False)


NO_COLOR = click.option(
    "--no-color",
    is_flag=True,
    expose_value=False,
    callback=_set_no_color,
    help="Plain output without colour (also set by NO_COLOR).",
)


def use_color(ctx: click.Context) -> bool:
    options = ctx.find_root().obj
    return (not isinstance(options, Options) or options.color is not False) and (
        sys.stdout.isatty()
    )


def warn(message: str) -> None:
    click.echo(f"warning: {message}", err=True)


def confirm(yes: bool) -> Callable[[Repair], None]:
    """A confirmation that asks on a terminal (unless ``yes``) and aborts on 'no'.

    Without a terminal it refuses unless ``yes``, as apply does without
    --auto-approve: a state repair run by a script must say it means it.
    """

    def ask(repair: Repair) -> None:
        if yes:
            return
        from reconciler.render.problems import question as ask_about

        question = ask_about(repair)
        if not sys.stdin.isatty():
            raise ReconcilerError(
                f"{question} needs confirmation and there is no terminal to ask on; "
                "pass --yes (-y) to go ahead without asking"
            )
        if not click.confirm(question, default=False, err=True):
            raise click.exceptions.Abort()

    return ask


def warn_legacy_fields(declarations: Declarations, legacy_endpoints: bool) -> None:
    """Say on stderr which declared fields the legacy ``/assets`` endpoints leave out of
    the orders they take (nothing when the current endpoints are used)."""
    if not legacy_endpoints:
        return
    from reconciler.api.orders import legacy_dropped_fields

    for purchase in declarations.purchases:
        dropped = legacy_dropped_fields(purchase)
        if dropped:
            click.echo(
                f"warning: {purchase.address}: {', '.join(dropped)} is not sent with "
                "--legacy-endpoints (the /assets endpoints do not take it)",
                err=True,
            )


def make_client(legacy_endpoints: bool) -> CrayonClient:
    """An API client configured from the environment (``CRAYON_*`` variables)."""
    # Deferred: requests is slow to import and only commands that call the API need it.
    from reconciler.api.client import CrayonClient
    from reconciler.api.settings import ApiSettings

    settings = ApiSettings.from_env(os.environ, legacy_endpoints=legacy_endpoints)
    # From here the run talks HTTP for as long as it takes (retries, threads, their
    # exceptions make reference cycles): collect cycles again, as usual, but never
    # walk the declarations, state and plan built so far. Only when ``cli.main``
    # turned collection off: a caller that embeds the CLI keeps its own policy.
    if not gc.isenabled():
        gc.freeze()
        gc.enable()
    return CrayonClient(settings)


def approve(question: str, *, auto_approve: bool, command: str) -> bool:
    """Ask ``question`` on a terminal ("yes" only); without one, refuse unless
    ``auto_approve`` (``--auto-approve``) says the run means it."""
    if auto_approve:
        return True
    if not sys.stdin.isatty():
        raise PlanError(
            f"{command} needs confirmation and there is no terminal to ask on; "
            f"pass --auto-approve to {command} without asking"
        )
    answer = click.prompt(
        f"\n{question} Only 'yes' will be accepted",
        default="",
        show_default=False,
        err=True,
    )
    return bool(answer == "yes")


def seat_limit() -> int:
    """Seats one change may buy before apply wants --max-seats (RECONCILER_SEAT_LIMIT)."""
    from reconciler.commands.plan import DEFAULT_SEAT_LIMIT

    text = os.environ.get("RECONCILER_SEAT_LIMIT", "").strip()
    if not text:
        return DEFAULT_SEAT_LIMIT
    if not text.isdigit() or int(text) < 1:
        raise click.UsageError(f"RECONCILER_SEAT_LIMIT must be a whole number >= 1, not {text!r}")
    return int(text)
