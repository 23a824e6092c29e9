"""``validate``, ``plan``, ``show`` and ``apply``: parse, call the use case, render."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

import click

from reconciler import config, planfile, render
from reconciler.cli.common import (
    LEGACY,
    NO_COLOR,
    PATH,
    StateRef,
    make_client,
    progress,
    state_options,
    use_color,
    warn,
)
from reconciler.commands import apply as apply_commands
from reconciler.commands.plan import PlanRun, VerifyErrors, run_plan, verify_plan
from reconciler.errors import PlanError
from reconciler.model import Outcome, Plan, is_target
from reconciler.state import utc_now


def check_targets(
    _ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> tuple[str, ...]:
    """Refuse a ``--target`` that is neither an address nor an address prefix ending in '/'."""
    for value in values:
        if not is_target(value):
            raise click.BadParameter(
                f"{value!r} is not an address (such as acme/m365-basic) or a prefix ending "
                "in '/' (such as acme/)"
            )
    return values


@click.command()
@PATH
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


@click.command()
@PATH
@state_options()
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "markdown"]),
    default=None,
    help="Output format: text (default), json (machine-readable) or markdown (PR comments).",
)
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=str),
    help="Save the plan to this file for `reconciler apply --plan`.",
)
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 0 when nothing is to be done, 2 when purchases, increases or moves are planned.",
)
@click.option(
    "--verify",
    is_flag=True,
    help="Also ask the API's verify endpoint about each purchase (never buys); needs credentials.",
)
@click.option(
    "--target",
    "targets",
    multiple=True,
    metavar="ADDR",
    callback=check_targets,
    help="Only this address (repeatable; 'acme/' selects every address under acme/).",
)
@LEGACY
@NO_COLOR
@click.pass_context
def plan(
    ctx: click.Context,
    path: str,
    state: StateRef,
    as_json: bool,
    fmt: str | None,
    out: str | None,
    detailed_exitcode: bool,
    verify: bool,
    targets: tuple[str, ...],
    legacy_endpoints: bool,
) -> int:
    """Show what apply would buy: the declarations at PATH against the state.

    Never writes the state and, without --verify, never calls the API. Exits 1
    when a change is a conflict or pending (or fails verify), after printing the
    whole plan.
    """
    if as_json and fmt not in (None, "json"):
        raise click.UsageError("--json and --format are exclusive")
    declarations = config.load(path)
    store = state.open()
    run = run_plan(
        declarations,
        store.load(),
        verify=_verifier(legacy_endpoints) if verify else None,
        targets=targets,
    )
    _echo_plan(ctx, run.plan, "json" if as_json else (fmt or "text"), run.verify_errors)
    if out:
        planfile.save(out, run.plan)
        click.echo(
            f"Saved the plan to {out}. Apply it with: reconciler apply --plan {out}", err=True
        )
    _explain(run, state, store.locked_by)
    return run.exit_code(detailed=detailed_exitcode)


def _verifier(legacy_endpoints: bool) -> Callable[[Plan], VerifyErrors]:
    def verify(the_plan: Plan) -> VerifyErrors:
        from reconciler.api.orders import build_order, new_external_order_id

        with make_client(legacy_endpoints) as client:
            return verify_plan(
                the_plan, client, build_order=build_order, new_order_id=new_external_order_id
            )

    return verify


def _explain(run: PlanRun, state: StateRef, locked_by: Callable[[], str | None]) -> None:
    """The plan's warnings and errors, on stderr."""
    summary = run.plan.summary
    if run.orphans:
        warn(
            f"{len(run.orphans)} recorded purchase(s) no longer declared: "
            f"{', '.join(run.orphans)}. "
            "Licences are never cancelled; `reconciler state rm ADDR` forgets one."
        )
    holder = locked_by() if summary.pending else None
    if holder is not None:
        # Resolving a checkout that a running apply still waits for would be wrong.
        click.echo(
            f"error: an apply holds the lock on the state ({holder}); its "
            f"{len(run.state.pending)} in-flight checkout(s) are pending for that reason "
            "and it records each outcome itself. Wait for it to finish, then plan again; "
            "do not resolve them while it runs",
            err=True,
        )
    elif summary.pending:
        click.echo(f"error: {render.pending_message(run.state, state.flags)}", err=True)
    if summary.blocked:
        click.echo(
            f"error: the plan has {summary.conflicts} conflict(s) and {summary.pending} pending "
            "change(s); apply would refuse it",
            err=True,
        )
    elif run.refused_by_verify:
        failing = run.refused_by_verify
        click.echo(f"error: verify refused {len(failing)} order(s): {', '.join(failing)}", err=True)


def _echo_plan(
    ctx: click.Context, the_plan: Plan, fmt: str, verify_errors: VerifyErrors | None = None
) -> None:
    if fmt == "json":
        click.echo(render.plan_json(the_plan, verify_errors))
    elif fmt == "markdown":
        click.echo(render.plan_markdown(the_plan, verify_errors=verify_errors), nl=False)
    else:
        color = use_color(ctx)
        text = render.plan_text(the_plan, color=color, verify_errors=verify_errors)
        click.echo(text, color=color)


@click.command()
@state_options()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout.")
@click.option(
    "--plan",
    "plan_path",
    type=click.Path(dir_okay=False, path_type=str),
    help="Show a saved plan file instead of the state.",
)
@NO_COLOR
@click.pass_context
def show(ctx: click.Context, state: StateRef, as_json: bool, plan_path: str | None) -> int:
    """Show the recorded purchases and pending operations (or a saved plan)."""
    if plan_path:
        _echo_plan(ctx, planfile.read(plan_path), "json" if as_json else "text")
        return 0
    current = state.open().load()
    if as_json:
        click.echo(json.dumps(render.state_dict(current), indent=2, sort_keys=True))
    else:
        click.echo(render.state_text(current))
    return 0


@click.command()
@PATH
@state_options(lock=True)
@click.option(
    "--plan",
    "plan_path",
    type=click.Path(dir_okay=False, path_type=str),
    help="Apply this saved plan (refused if the state or declarations changed since).",
)
@click.option("--auto-approve", is_flag=True, help="Do not ask; required when not on a TTY.")
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
@LEGACY
@NO_COLOR
@click.pass_context
def apply(
    ctx: click.Context,
    path: str,
    state: StateRef,
    plan_path: str | None,
    auto_approve: bool,
    parallelism: int,
    max_seats: int | None,
    targets: tuple[str, ...],
    legacy_endpoints: bool,
) -> int:
    """Buy what the plan says, each seat exactly once.

    Verifies each order, records it as pending, checks it out, and records the
    seats after each 204. A checkout whose outcome is unknown stays pending and
    stops the run; settle it with `reconciler state resolve`.
    """
    from reconciler.api.orders import build_order, new_external_order_id

    declarations = config.load(path)
    store = state.open()
    color = use_color(ctx)
    run = apply_commands.run_apply(
        declarations,
        store,
        state_flags=state.flags,
        saved=planfile.read(plan_path) if plan_path else None,
        saved_path=plan_path,
        max_seats=max_seats,
        show_plan=lambda p: click.echo(render.plan_text(p, color=color), color=color),
        connect=lambda: make_client(legacy_endpoints),
        approve=lambda: _approve(auto_approve),
        build_order=build_order,
        new_order_id=new_external_order_id,
        now=utc_now,
        on_event=progress(color),
        parallelism=parallelism,
        targets=targets,
    )
    if run.cancelled:
        click.echo("Apply cancelled; nothing was bought.", err=True)
        return 1
    for change in run.moved:
        click.echo(f"Moved {change.moved_from} to {change.address} in the state.")
    if run.result is None:
        return 0
    click.echo("")
    click.echo(render.apply_table(run.result))
    click.echo(render.apply_summary(run.result))
    if run.result.count(Outcome.PENDING):
        click.echo(render.pending_message(store.load(), state.flags), err=True)
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
