"""``apply``: parse, plan under the lock, ask, buy through the use case, render."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

import click

from reconciler import config, planfile, views
from reconciler.cli.common import (
    LEGACY,
    NO_COLOR,
    REFRESH,
    Amount,
    StateRef,
    approve,
    console,
    make_client,
    seat_limit,
    state_options,
    warn_legacy_fields,
)
from reconciler.cli.plan import check_targets
from reconciler.errors import ReconcilerError
from reconciler.model import Outcome
from reconciler.state import utc_now

if TYPE_CHECKING:
    from reconciler.views.base import ApplyView


@click.command()
@click.argument("path", required=False, type=click.Path(path_type=str), metavar="[PATH]")
@state_options(lock=True)
@click.option(
    "--plan",
    "plan_path",
    type=click.Path(dir_okay=False, path_type=str),
    help="Apply this saved plan without asking (the plan is the approval); refused if the "
    "state or declarations changed since. PATH defaults to the declarations it was made from.",
)
@click.option("--auto-approve", is_flag=True, help="Do not ask; required when not on a TTY.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print what apply does as JSON lines on stdout (schemas/apply-events.schema.json); "
    "the plan and progress go to stderr. Needs --auto-approve or --plan.",
)
@click.option(
    "--parallelism",
    type=click.IntRange(1, 32),
    default=1,
    show_default=True,
    help="Changes in flight at once; 1 records each result before the next checkout.",
)
@click.option(
    "--max-seats",
    type=click.IntRange(min=0),
    default=None,
    help="Refuse, before any API call, a plan buying more seats than this in total.",
)
@click.option(
    "--max-cost",
    type=Amount(),
    default=None,
    metavar="AMOUNT",
    help="Refuse, before anything is sent, a plan whose purchases add more than AMOUNT per "
    "month (one-time purchases: their price), in the catalogue's currency; refused too when "
    "a price is unknown.",
)
@click.option(
    "--target",
    "targets",
    multiple=True,
    metavar="ADDR",
    callback=check_targets,
    help="Only this address (repeatable; 'acme/' selects every address under acme/).",
)
@REFRESH
@LEGACY
@NO_COLOR
@click.pass_context
def apply(
    ctx: click.Context,
    path: str | None,
    state: StateRef,
    plan_path: str | None,
    auto_approve: bool,
    as_json: bool,
    parallelism: int,
    max_seats: int | None,
    max_cost: Decimal | None,
    targets: tuple[str, ...],
    refresh: bool | None,
    legacy_endpoints: bool,
) -> int:
    """Carry out the plan: each seat bought or changed exactly once.

    First reads Cloud-iQ for the customer tenants it touches and records what the API
    proves (pending operations settled, the subscriptions each address owns, seats
    changed in the portal); then plans against Cloud-iQ's seats, asks, and carries
    the plan out. A purchase is verified, recorded as pending, checked out and
    recorded after its 204; a subscription update is recorded as pending, read,
    compared, sent and recorded. An operation whose outcome the API cannot tell
    stays pending and blocks only its own address.
    """
    if as_json and not (auto_approve or plan_path):
        raise click.UsageError(
            "--json needs --auto-approve or --plan: a run printing JSON cannot ask for approval"
        )
    view = views.apply_view("json" if as_json else "text", console(ctx, machine=as_json))
    options = _ApplyOptions(
        path,
        state,
        plan_path,
        auto_approve,
        parallelism,
        max_seats,
        targets,
        legacy_endpoints,
        refresh=refresh is not False,
        max_cost=max_cost,
    )
    try:
        return _apply(options, view)
    except click.ClickException as exc:
        view.failed(ReconcilerError(exc.format_message()))
        raise
    except ReconcilerError as exc:
        view.failed(exc)
        raise


@dataclass(frozen=True)
class _ApplyOptions:
    path: str | None
    state: StateRef
    plan_path: str | None
    auto_approve: bool
    parallelism: int
    max_seats: int | None
    targets: tuple[str, ...]
    legacy_endpoints: bool
    refresh: bool = True
    max_cost: Decimal | None = None


def _apply(o: _ApplyOptions, view: ApplyView) -> int:
    from reconciler.api.orders import build_order, new_external_order_id
    from reconciler.commands.apply import ApplyPorts, ApplyRequest, run_apply

    saved = planfile.read_saved(o.plan_path) if o.plan_path else None
    if saved is None and not o.auto_approve and not sys.stdin.isatty():
        approve("", auto_approve=False, command="apply")  # refuses at once, before any read
    # A saved plan remembers its declarations, so it applies from any directory.
    path = o.path or (saved.declarations_path if saved else None) or "."
    declarations = config.load(path)
    warn_legacy_fields(declarations, o.legacy_endpoints)
    store = o.state.open()
    request = ApplyRequest(
        declarations,
        targets=o.targets,
        saved=saved.plan if saved else None,
        saved_path=o.plan_path,
        max_seats=o.max_seats,
        max_cost=o.max_cost,
        seat_limit=seat_limit(),
        parallelism=o.parallelism,
        refresh=o.refresh,
    )
    ports = ApplyPorts(
        store=store,
        connect=lambda: make_client(o.legacy_endpoints),
        # A saved plan was reviewed when it was made: applying it is the approval.
        approve=lambda plan, prices: (
            saved is not None
            or o.auto_approve
            or approve(view.question(plan, prices), auto_approve=False, command="apply")
        ),
        listener=view,
        build_order=build_order,
        new_order_id=new_external_order_id,
        now=utc_now,
    )
    run = run_apply(request, ports)
    if run.cancelled:
        view.cancelled()
        return 1
    waiting = {c.address for c in run.pending}
    if run.result is not None:
        waiting |= {r.address for r in run.result.results if r.outcome is Outcome.PENDING}
    pending = [op for a, op in store.load().pending.items() if a in waiting] if waiting else []
    view.finished(run, pending, o.state.flags)
    return 0 if run.ok else 1
