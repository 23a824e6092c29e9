"""``apply``: parse, plan under the lock, ask, buy through the use case, render."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import click

from reconciler import config, planfile, render
from reconciler.cli.common import (
    LEGACY,
    NO_COLOR,
    REFRESH,
    StateRef,
    make_client,
    progress,
    seat_limit,
    state_options,
    use_color,
)
from reconciler.cli.plan import check_targets
from reconciler.errors import PlanError, ReconcilerError
from reconciler.model import Outcome
from reconciler.state import utc_now

if TYPE_CHECKING:
    from reconciler.cli.events import JsonLines


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
    targets: tuple[str, ...],
    refresh: bool,
    legacy_endpoints: bool,
) -> int:
    """Buy what the plan says, each seat exactly once.

    Verifies each order, records it as pending, checks it out, and records the
    seats after each 204. A checkout whose outcome is unknown stays pending and
    stops the run; settle it with `reconciler state resolve`.
    """
    if as_json and not (auto_approve or plan_path):
        raise click.UsageError(
            "--json needs --auto-approve or --plan: a run printing JSON cannot ask for approval"
        )
    from reconciler.cli.events import JsonLines

    events = JsonLines() if as_json else None
    options = _ApplyOptions(
        path,
        state,
        plan_path,
        auto_approve,
        parallelism,
        max_seats,
        targets,
        legacy_endpoints,
        refresh=refresh,
    )
    try:
        return _apply(ctx, options, events)
    except (ReconcilerError, click.ClickException) as exc:
        if events is not None:
            events.fail(exc)
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
    refresh: bool = False


def _apply(ctx: click.Context, o: _ApplyOptions, events: JsonLines | None) -> int:
    from reconciler.api.orders import build_order, new_external_order_id
    from reconciler.cli.refresh import observe_once
    from reconciler.commands import apply as apply_commands

    saved = planfile.read_saved(o.plan_path) if o.plan_path else None
    # A saved plan remembers its declarations, so it applies from any directory.
    path = o.path or (saved.declarations_path if saved else None) or "."
    declarations = config.load(path)
    store = o.state.open()
    as_json = events is not None
    color = use_color(ctx) and not as_json
    run = apply_commands.run_apply(
        declarations,
        store,
        state_flags=o.state.flags,
        saved=saved.plan if saved else None,
        saved_path=o.plan_path,
        max_seats=o.max_seats,
        seat_limit=seat_limit(),
        show_plan=lambda p: click.echo(render.plan_text(p, color=color), color=color, err=as_json),
        connect=lambda: make_client(o.legacy_endpoints),
        # A saved plan was reviewed when it was made: applying it is the approval.
        approve=lambda: saved is not None or _approve(o.auto_approve),
        build_order=build_order,
        new_order_id=new_external_order_id,
        now=utc_now,
        on_event=events.on_event if events else progress(color),
        parallelism=o.parallelism,
        targets=o.targets,
        on_start=events.start if events else lambda p: None,
        observe=observe_once(o.legacy_endpoints, declarations) if o.refresh else None,
    )
    if run.cancelled:
        click.echo("Apply cancelled; nothing was bought.", err=True)
        if events:
            events.complete("cancelled")
        return 1
    for change in run.moved:
        click.echo(f"Moved {change.moved_from} to {change.address} in the state.", err=as_json)
    if run.result is None:
        if events:
            events.complete("applied", moved=len(run.moved))
        return 0
    click.echo("", err=as_json)
    click.echo(render.apply_table(run.result), err=as_json)
    click.echo(render.apply_summary(run.result), err=as_json)
    if run.result.count(Outcome.PENDING):
        click.echo(render.pending_message(store.load(), o.state.flags), err=True)
    if events:
        outcome = "applied" if run.result.ok else "failed"
        events.complete(outcome, result=run.result, moved=len(run.moved))
    return 0 if run.result.ok else 1


def _approve(auto_approve: bool) -> bool:
    if auto_approve:
        return True
    if not sys.stdin.isatty():
        raise PlanError(
            "apply needs confirmation and there is no terminal to ask on; "
            "pass --auto-approve to apply without asking"
        )
    answer = click.prompt(
        "\nDo you want to buy these licences? Only 'yes' will be accepted",
        default="",
        show_default=False,
        err=True,
    )
    return bool(answer == "yes")
