"""``validate``, ``plan`` and ``show``: parse, call the use case, render."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from reconciler import config, planfile, render
from reconciler.cli.common import (
    LEGACY,
    NO_COLOR,
    PATH,
    REFRESH,
    StateRef,
    make_client,
    seat_limit,
    state_options,
    use_color,
    warn,
)
from reconciler.commands.plan import PlanRun, VerifyErrors, run_plan, verify_plan
from reconciler.errors import ApiError, ConfigError, ReconcilerError
from reconciler.model import Plan, is_target

if TYPE_CHECKING:
    from reconciler.cli.refresh import Cloud
    from reconciler.observe import Observations


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
@click.argument("paths", nargs=-1, type=click.Path(path_type=str), metavar="[PATH]...")
def validate(paths: tuple[str, ...]) -> int:
    """Check the declarations at each PATH (directories or YAML files; default: .).

    All paths are checked as one set, so a name declared under two of them is a
    duplicate. Schema and semantic checks only: reads no state and calls no API.
    """
    declarations = config.load(*(paths or (".",)))
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
@REFRESH
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
    refresh: bool,
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
    fmt = "json" if as_json else (fmt or "text")
    cloud: Cloud | None = None
    if refresh or verify:
        # Deferred, as below: the Cloud-iQ reads, the executor and their renderers
        # are imported only by the runs that use them, so a plain plan starts sooner.
        from reconciler.cli.refresh import Cloud

        cloud = Cloud(legacy_endpoints)
    try:
        declarations = config.load(path)
        store = state.open()
        run = run_plan(
            declarations,
            store.load(),
            verify=_verifier(legacy_endpoints) if verify else None,
            targets=targets,
            observe=cloud.observe if cloud is not None and refresh else None,
        )
        catalogue = cloud.catalogue(run.plan, run.observations) if cloud is not None else None
    except ReconcilerError as exc:
        if fmt == "markdown":
            # The pipeline posts stdout as the comment: the reason belongs there too.
            _echo_failure_markdown(exc, state.workspace, targets)
        raise
    finally:
        if cloud is not None:
            cloud.close()
    _echo_plan(
        ctx,
        run.plan,
        fmt,
        run.verify_errors,
        state,
        catalogue=catalogue,
        observations=run.observations,
    )
    if out:
        planfile.save(out, run.plan, declarations=path)
        click.echo(
            f"Saved the plan to {out}. Apply it with: reconciler apply --plan {out}", err=True
        )
    _explain(run, state, store.locked_by)
    return run.exit_code(detailed=detailed_exitcode)


def _echo_failure_markdown(exc: ReconcilerError, workspace: str, targets: tuple[str, ...]) -> None:
    if isinstance(exc, ConfigError):
        text = render.config_errors_markdown(exc.problems, workspace=workspace, targets=targets)
    else:
        message = exc.describe() if isinstance(exc, ApiError) else str(exc)
        text = render.error_markdown(message, workspace=workspace, targets=targets)
    click.echo(text, nl=False)


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
    from reconciler.commands.plan import oversized

    summary = run.plan.summary
    for address, n in oversized(run.plan, seat_limit()):
        warn(
            f"{address} buys {render.seats(n)} in one change, more than the sanity limit of "
            f"{render.seats(seat_limit())} (RECONCILER_SEAT_LIMIT): apply will want the total "
            f"confirmed with --max-seats {summary.seats}"
        )
    if run.orphans:
        warn(
            f"{render.count(len(run.orphans), 'recorded purchase')} no longer declared: "
            f"{', '.join(run.orphans)}. "
            "Licences are never cancelled; `reconciler state rm ADDR` forgets one."
        )
    holder = locked_by() if summary.pending else None
    if holder is not None:
        # Resolving a checkout that a running apply still waits for would be wrong.
        in_flight = len(run.state.pending)
        verb, them = ("is", "it") if in_flight == 1 else ("are", "them")
        click.echo(
            f"error: an apply holds the lock on the state ({holder}); its "
            f"{render.count(in_flight, 'in-flight checkout')} {verb} pending for that reason "
            "and it records each outcome itself. Wait for it to finish, then plan again; "
            f"do not resolve {them} while it runs",
            err=True,
        )
    elif summary.pending:
        click.echo(f"error: {render.pending_message(run.state, state.flags)}", err=True)
    if summary.blocked:
        pending = render.count(summary.pending, "pending change")
        click.echo(
            f"error: the plan has {render.count(summary.conflicts, 'conflict')} and {pending}; "
            "apply would refuse it",
            err=True,
        )
    elif run.refused_by_verify:
        failing = run.refused_by_verify
        click.echo(
            f"error: verify refused {render.count(len(failing), 'order')}: {', '.join(failing)}",
            err=True,
        )
    elif run.verify_errors is not None:
        checked = len(run.plan.buying())
        if checked:
            click.echo(
                f"Verified {render.count(checked, 'change')} with the API's verify endpoint: "
                "no errors (nothing was bought).",
                err=True,
            )
        else:
            click.echo("Nothing to verify: the plan buys nothing.", err=True)


def _echo_plan(
    ctx: click.Context,
    the_plan: Plan,
    fmt: str,
    verify_errors: VerifyErrors | None = None,
    state: StateRef | None = None,
    *,
    catalogue: render.Catalogue | None = None,
    observations: Observations | None = None,
) -> None:
    if fmt == "json":
        data = render.plan_dict(the_plan, verify_errors, catalogue)
        if observations is not None:
            from reconciler.render import refresh as render_refresh

            data = render_refresh.add_observations(data, observations)
        click.echo(json.dumps(data, indent=2, sort_keys=True))
    elif fmt == "markdown":
        text = render.plan_markdown(
            the_plan,
            verify_errors=verify_errors,
            catalogue=catalogue,
            workspace=state.workspace if state else "default",
            state_flags=_comment_flags(state) if state else "",
        )
        if observations is not None:
            from reconciler.render import refresh as render_refresh

            text = render_refresh.add_markdown(text, observations, catalogue=catalogue)
        click.echo(text, nl=False)
    else:
        color = use_color(ctx)
        text = render.plan_text(
            the_plan, color=color, verify_errors=verify_errors, catalogue=catalogue
        )
        if observations is not None:
            from reconciler.render import refresh as render_refresh

            seen = render_refresh.observations_text(observations, catalogue=catalogue, color=color)
            text += "\n\n" + seen
        click.echo(text, color=color)


def _comment_flags(state: StateRef) -> str:
    """The state options for commands suggested in a pull-request comment: a database
    URL (its host and user) stays out of it; whoever resolves names it in their own
    RECONCILER_STATE."""
    if state.path.startswith(("postgresql://", "postgres://")):
        return f" --workspace {state.workspace}" if state.workspace != "default" else ""
    return state.flags


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
        saved = planfile.read_saved(plan_path)
        if as_json:
            click.echo(saved.json())
        else:
            _echo_plan(ctx, saved.plan, "text")
        return 0
    current = state.open().load()
    if as_json:
        click.echo(json.dumps(render.state_dict(current), indent=2, sort_keys=True))
    else:
        click.echo(render.state_text(current))
    return 0
