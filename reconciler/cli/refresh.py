"""``refresh`` and ``import``, and ``Cloud``: what ``plan --refresh`` and ``apply
--refresh`` read through.

Parse, build the client (``make_client``) and the store, call the use case in
``reconciler.commands.refresh`` / ``adopt``, render, map to an exit code. Holds
no business rules.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from reconciler import config
from reconciler.cli.common import (
    LEGACY,
    NO_COLOR,
    PATH,
    StateRef,
    approve,
    make_client,
    state_options,
    use_color,
    warn,
)
from reconciler.commands import adopt
from reconciler.commands import refresh as refresh_commands
from reconciler.errors import ApiError, ReconcilerError
from reconciler.model import Declarations, Identity, Plan, State
from reconciler.observe import Observations, ProductInfo, observe
from reconciler.outcomes import ImportPlan
from reconciler.render import refresh as render_refresh
from reconciler.state import utc_now

if TYPE_CHECKING:
    from reconciler.api.client import CrayonClient


class Cloud:
    """One API client for a run's reads: observations and the catalogue, each
    tenant's agreement products read once. Close it when done."""

    def __init__(self, legacy_endpoints: bool) -> None:
        self._legacy = legacy_endpoints
        self._client: CrayonClient | None = None
        self._catalogue: refresh_commands.ProductLookup | None = None

    def _connect(self) -> CrayonClient:
        if self._client is None:
            self._client = make_client(self._legacy)
        return self._client

    def observe(
        self, declarations: Declarations, state: State, targets: Sequence[str] = ()
    ) -> Observations:
        readings = refresh_commands.read_cloud(
            self._connect(), declarations, state, targets=targets
        )
        return observe(declarations, state, readings)

    def catalogue(
        self, the_plan: Plan, observations: Observations | None = None
    ) -> dict[Identity, ProductInfo] | None:
        """Names and prices of the plan's (and the observations') identities; None, with
        a warning, when the agreement products cannot be read (they only decorate)."""
        identities: list[Identity] = [c.identity for c in the_plan.changes]
        if observations is not None:
            identities += [d.identity for d in observations.drift]
            identities += [u.identity for u in observations.unmanaged]
        try:
            if self._catalogue is None:
                self._catalogue = refresh_commands.ProductLookup(self._connect())
            return self._catalogue.lookup(identities)
        except ApiError as exc:
            warn(f"product names and prices are unknown: {exc}")
            return None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


@click.command()
@PATH
@state_options(lock=True)
@click.option("--auto-approve", is_flag=True, help="Do not ask; required when not on a TTY.")
@LEGACY
@NO_COLOR
@click.pass_context
def refresh(
    ctx: click.Context, path: str, state: StateRef, auto_approve: bool, legacy_endpoints: bool
) -> int:
    """Read Cloud-iQ back and record what it proves. Never buys.

    Reads the active subscriptions of every customer tenant in the declarations
    at PATH and the state, and for each pending checkout its asset order and the
    processed orders. After approval it settles pending checkouts the API proves
    were made (recorded with the evidence) or failed, and records seats changed
    in the portal as adjustments. Exits 0 when nothing is left pending, 1 when
    pending checkouts remain (each printed with what was found) or the API
    refused to list a customer tenant.
    """
    declarations = config.load(path)
    store = state.open()
    color = use_color(ctx)

    def show(observations: Observations) -> None:
        click.echo(render_refresh.observations_text(observations, color=color), color=color)

    run = refresh_commands.run_refresh(
        declarations,
        store,
        connect=lambda: make_client(legacy_endpoints),
        show=show,
        approve=lambda: approve(
            "Record these findings in the state?", auto_approve=auto_approve, command="refresh"
        ),
        now=utc_now,
    )
    click.echo("")
    click.echo(render_refresh.refresh_result(run))
    if run.observations.refused:
        click.echo(render_refresh.refused_message(run.observations), err=True)
    if run.left:
        click.echo(render_refresh.left_message(run, state_flags=state.flags), err=True)
    return run.exit_code()


@click.command("import")
@click.argument("path", default=".", type=click.Path(path_type=str), metavar="[PATH]")
@click.option(
    "--tenant",
    "tenant",
    required=True,
    type=click.IntRange(1, 2147483647),
    help="The customer tenant whose subscriptions to adopt.",
)
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=str),
    help="The declarations file to write (must not exist; default: PATH/tenant-ID.yaml).",
)
@click.option(
    "--prefix",
    default=None,
    help="The address prefix of the new purchases (default: the prefix the declarations "
    "already use for the tenant, else tenant-ID).",
)
@state_options(lock=True)
@click.option("--auto-approve", is_flag=True, help="Do not ask; required when not on a TTY.")
@LEGACY
def import_command(
    path: str,
    tenant: int,
    out: str | None,
    prefix: str | None,
    state: StateRef,
    auto_approve: bool,
    legacy_endpoints: bool,
) -> int:
    """Adopt a customer tenant's existing subscriptions. Never buys.

    Every active subscription of the tenant whose identity no declaration at
    PATH and no recorded address has becomes a purchase in a new declarations
    file (one per identity, named after the product; comments name the
    subscriptions); an identity declared at one address with nothing recorded
    is adopted at that address. After approval each is recorded in the state as
    imported (no checkout), so the next plan for them is a noop.
    """
    declarations = config.load(path)
    store = state.open()
    prefix = prefix or adopt.existing_prefix(tenant, declarations) or adopt.default_prefix(tenant)
    target = out or _default_out(path, adopt.default_prefix(tenant))
    command = f"reconciler import --tenant {tenant}"

    def show(the_plan: ImportPlan, written: str | None) -> None:
        if written is not None and os.path.lexists(written):
            raise ReconcilerError(
                f"{written} already exists; choose another file with --out "
                "(import never overwrites)"
            )
        click.echo(render_refresh.import_text(the_plan, written))

    run = adopt.run_import(
        tenant,
        declarations,
        store,
        connect=lambda: make_client(legacy_endpoints),
        prefix=prefix,
        out=target,
        command=command,
        show=show,
        approve=lambda: approve(
            "Write these declarations and record them as imported?",
            auto_approve=auto_approve,
            command="import",
        ),
        write_file=_write_new_file,
        now=utc_now,
    )
    result = render_refresh.import_result(run)
    if result:
        click.echo(result)
    if run.out and not _inside(run.out, path):
        warn(f"{run.out} is not under {path}; move it there so plan and apply read it")
    return 1 if run.cancelled else 0


def _default_out(path: str, prefix: str) -> str:
    base = Path(path)
    directory = base if base.is_dir() else base.parent
    return str(directory / f"{prefix.replace('/', '-')}.yaml")


def _inside(file: str, path: str) -> bool:
    target = Path(file).resolve()
    root = Path(path).resolve()
    return target == root or (root.is_dir() and root in target.parents)


def _write_new_file(path: str, text: str) -> None:
    """Write ``text`` to a file that must not exist yet, complete and durable."""
    try:
        with open(path, "x", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
    except FileExistsError:
        raise ReconcilerError(
            f"{path} already exists; choose another file with --out (import never overwrites)"
        ) from None
    except OSError as exc:
        raise ReconcilerError(f"cannot write {path}: {exc.strerror}") from None
