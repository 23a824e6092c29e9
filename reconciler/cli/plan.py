"""``validate``, ``plan`` and ``show``: parse, call the use case, render."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import click

from reconciler import config, render, views
from reconciler.cli.common import (
    LEGACY,
    NO_COLOR,
    PATH,
    REFRESH,
    StateRef,
    console,
    credentials_configured,
    make_client,
    seat_limit,
    state_options,
    warn_legacy_fields,
)
from reconciler.errors import ConfigError, ReconcilerError
from reconciler.model import Action, Plan, State, is_target

if TYPE_CHECKING:
    from reconciler.cli.refresh import Cloud
    from reconciler.outcomes import VerifyErrors
    from reconciler.render.money import Catalogue
    from reconciler.views.base import PlanView


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
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "github"]),
    default="text",
    show_default=True,
    help="text (errors on stderr), json (one document on stdout) or github (workflow "
    "commands that annotate each line in a pull request).",
)
@click.pass_context
def validate(ctx: click.Context, paths: tuple[str, ...], fmt: str) -> int:
    """Check the declarations at each PATH (directories or YAML files; default: .).

    All paths are checked as one set, so a name declared under two of them is a
    duplicate. Schema and semantic checks only: reads no state and calls no API.
    """
    view = views.validate_view(fmt, console(ctx, machine=fmt != "text"))
    try:
        declarations = config.load(*(paths or (".",)))
    except ConfigError as exc:
        view.invalid(exc.problems)
        return 1
    view.valid(len(declarations.purchases), len(declarations.files))
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
    help="Exit 0 when nothing is to be done, 2 when changes are planned (anything apply "
    "would buy, update or write), 1 on errors, conflicts and pending operations.",
)
@click.option(
    "--verify",
    is_flag=True,
    help="Also ask the API's verify endpoint about each purchase (never buys); needs credentials.",
)
@click.option(
    "--expect",
    "expect",
    type=click.Path(dir_okay=False, path_type=str),
    metavar="REVIEWED.plan",
    help="Exit 1, saving nothing, unless the plan's changes (addresses, actions, seats, "
    "the seats each starts from) are exactly those of this reviewed plan (`plan --out`).",
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
    expect: str | None,
    refresh: bool | None,
    targets: tuple[str, ...],
    legacy_endpoints: bool,
) -> int:
    """Show what apply would do, against the state and Cloud-iQ.

    The declarations at PATH are planned against the state and what Cloud-iQ shows.

    Reads Cloud-iQ when the CRAYON_* credentials are set (the seats each address
    has there, what the API shows of pending operations) and otherwise plans against
    the state alone and says so. Never writes the state and never buys. Exits 1
    when a change is a conflict or pending (or fails verify), after printing the
    whole plan.
    """
    # Deferred: validate, in the same module, needs none of these.
    from reconciler.commands.plan import run_plan
    from reconciler.views.base import PlanContext

    if as_json and fmt not in (None, "json"):
        raise click.UsageError("--json and --format are exclusive")
    view = views.plan_view("json" if as_json else (fmt or "text"), console(ctx))
    refresh, offline = _reads_cloud(refresh)
    cloud = _cloud(legacy_endpoints) if refresh or verify else None
    context = PlanContext(state.workspace, targets, state.flags, state.comment_flags)
    try:
        declarations = config.load(path)
        if verify:
            warn_legacy_fields(declarations, legacy_endpoints)
        store = state.open()
        run = run_plan(
            declarations,
            store.load(),
            verify=_verifier(legacy_endpoints) if verify else None,
            targets=targets,
            observe=cloud.observe if cloud is not None and refresh else None,
            seat_limit=seat_limit(),
            offline=offline,
        )
        catalogue = cloud.catalogue(run.plan, run.observations) if cloud is not None else None
    except ReconcilerError as exc:
        view.failure(exc, context)
        raise
    finally:
        if cloud is not None:
            cloud.close()
    if run.plan.summary.count(Action.PENDING):
        context = replace(context, holder=store.locked_by())
    view.plan(run, catalogue, context)
    _keep(run.plan, path, expect, out, catalogue, view)
    return run.exit_code(detailed=detailed_exitcode)


def _keep(
    the_plan: Plan,
    path: str,
    expect: str | None,
    out: str | None,
    catalogue: Catalogue | None,
    view: PlanView,
) -> None:
    """``--expect``: refuse a plan other than the reviewed one; ``--out``: save it."""
    from reconciler import planfile
    from reconciler.commands.plan import expect_reviewed

    if expect:
        expect_reviewed(planfile.read(expect), the_plan, expect)
    if out:
        planfile.save(out, the_plan, declarations=path, catalogue=catalogue)
        view.saved(out)


def _cloud(legacy_endpoints: bool) -> Cloud:
    # Deferred: the Cloud-iQ reads, the executor and their renderers are imported
    # only by the runs that use them, so a plain plan starts sooner.
    from reconciler.cli.refresh import Cloud

    return Cloud(legacy_endpoints)


def _reads_cloud(refresh: bool | None) -> tuple[bool, str | None]:
    """Whether plan reads Cloud-iQ, and why not when it does not: ``--refresh`` as
    given, or by default whenever the credentials are set."""
    if refresh is None:
        if credentials_configured():
            return True, None
        return False, "no credentials (the CRAYON_* variables are not set)"
    return refresh, None if refresh else "--refresh=false"


def _verifier(legacy_endpoints: bool) -> Callable[[Plan], VerifyErrors]:
    def verify(the_plan: Plan) -> VerifyErrors:
        from reconciler.api.orders import build_order, new_external_order_id
        from reconciler.commands.plan import verify_plan

        with make_client(legacy_endpoints) as client:
            return verify_plan(
                the_plan, client, build_order=build_order, new_order_id=new_external_order_id
            )

    return verify


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
        from reconciler import planfile
        from reconciler.outcomes import PlanRun
        from reconciler.views.base import PlanContext

        saved = planfile.read_saved(plan_path)
        if as_json:
            click.echo(saved.json())
        else:
            the_plan = saved.plan
            run = PlanRun(the_plan, State(the_plan.lineage, the_plan.serial))
            views.plan_view("text", console(ctx)).plan(run, saved.catalogue, PlanContext())
        return 0
    current = state.open().load()
    if as_json:
        from reconciler.views.json import state_json

        click.echo(state_json(current))
    else:
        click.echo(render.state_text(current))
    return 0
