"""The ``reconciler`` command line.

The only module that imports click and the only place that builds real API
clients and state stores. A command body loads, plans, renders, echoes and
returns an exit code; it holds no business logic. One error boundary
(``_Group.main``) prints ``error: ...`` for every ``ReconcilerError`` and click
usage error and exits 1; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from reconciler import __version__, config, executor, planfile, planner, render
from reconciler.errors import ApiError, ConfigError, FailureKind, PlanError, ReconcilerError
from reconciler.executor import Outcome
from reconciler.model import Action, CheckoutRecord, Plan, State
from reconciler.state import JsonFileStateStore, utc_now

if TYPE_CHECKING:
    from reconciler import api


@dataclass
class _Options:
    color: bool | None


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
        except click.exceptions.Abort:
            click.echo("Aborted.", err=True)
            code = 1
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
    ctx.obj = _Options(color=color)


_PATH = click.argument(
    "path",
    default=".",
    type=click.Path(path_type=str),
    metavar="[PATH]",
)


@cli.command()
@_PATH
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


_STATE = click.option(
    "--state",
    "state_path",
    default="reconciler.state.json",
    envvar="RECONCILER_STATE",
    show_default=True,
    type=click.Path(dir_okay=False, path_type=str),
    help="State file (also RECONCILER_STATE).",
)


_LEGACY = click.option(
    "--legacy-endpoints",
    is_flag=True,
    help="Use /api/v1/assets/verify and /api/v1/assets/checkout instead of purchaserequest.",
)


def _set_no_color(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.find_root().obj = _Options(color=False)


_NO_COLOR = click.option(
    "--no-color",
    is_flag=True,
    expose_value=False,
    callback=_set_no_color,
    help="Plain output without colour (also set by NO_COLOR).",
)


def _use_color(ctx: click.Context) -> bool:
    options: _Options = ctx.find_root().obj
    return options.color is not False and sys.stdout.isatty()


def _warn(message: str) -> None:
    click.echo(f"warning: {message}", err=True)


@cli.command()
@_PATH
@_STATE
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
    help="Exit 0 when nothing is to be bought, 2 when purchases or increases are planned.",
)
@click.option(
    "--verify",
    is_flag=True,
    help="Also ask the API's verify endpoint about each purchase (never buys); needs credentials.",
)
@_LEGACY
@_NO_COLOR
@click.pass_context
def plan(
    ctx: click.Context,
    path: str,
    state_path: str,
    as_json: bool,
    fmt: str | None,
    out: str | None,
    detailed_exitcode: bool,
    verify: bool,
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
    declarations = config.load(path)
    state = JsonFileStateStore(state_path).load()
    the_plan = planner.plan(declarations, state)
    verify_errors = _verify_plan(the_plan, legacy_endpoints) if verify else None
    _echo_plan(ctx, the_plan, fmt, verify_errors)
    summary = the_plan.summary
    if out:
        planfile.save(out, the_plan)
        click.echo(
            f"Saved the plan to {out}. Apply it with: reconciler apply --plan {out}", err=True
        )
    if summary.orphans:
        orphans = [c.address for c in the_plan.changes if c.action is Action.ORPHAN]
        _warn(
            f"{len(orphans)} recorded purchase(s) no longer declared: {', '.join(orphans)}. "
            "Licences are never cancelled; `reconciler state rm ADDR` forgets one."
        )
    if summary.pending:
        click.echo(f"error: {_pending_message(state, state_path)}", err=True)
    if summary.blocked:
        click.echo(
            f"error: the plan has {summary.conflicts} conflict(s) and {summary.pending} pending "
            "change(s); apply would refuse it",
            err=True,
        )
        return 1
    failing = sorted(address for address, errors in (verify_errors or {}).items() if errors)
    if failing:
        click.echo(f"error: verify refused {len(failing)} order(s): {', '.join(failing)}", err=True)
        return 1
    if detailed_exitcode and summary.has_purchases:
        return 2
    return 0


def _echo_plan(
    ctx: click.Context,
    the_plan: Plan,
    fmt: str,
    verify_errors: render.VerifyErrors | None = None,
) -> None:
    if fmt == "json":
        click.echo(render.plan_json(the_plan, verify_errors))
    elif fmt == "markdown":
        click.echo(render.plan_markdown(the_plan, verify_errors=verify_errors), nl=False)
    else:
        color = _use_color(ctx)
        text = render.plan_text(the_plan, color=color, verify_errors=verify_errors)
        click.echo(text, color=color)


@cli.command()
@_STATE
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout.")
@click.option(
    "--plan",
    "plan_path",
    type=click.Path(dir_okay=False, path_type=str),
    help="Show a saved plan file instead of the state.",
)
@_NO_COLOR
@click.pass_context
def show(ctx: click.Context, state_path: str, as_json: bool, plan_path: str | None) -> int:
    """Show the recorded purchases and pending operations (or a saved plan)."""
    if plan_path:
        _echo_plan(ctx, planfile.read(plan_path), "json" if as_json else "text")
        return 0
    state = JsonFileStateStore(state_path).load()
    if as_json:
        click.echo(json.dumps(render.state_dict(state), indent=2, sort_keys=True))
    else:
        click.echo(render.state_text(state))
    return 0


@cli.group()
def state() -> None:
    """Inspect and repair the state. Never calls the API."""


@state.command("list")
@_STATE
def state_list(state_path: str) -> int:
    """List the recorded addresses (pending ones marked with '?')."""
    current = JsonFileStateStore(state_path).load()
    for address in sorted(set(current.purchases) | set(current.pending)):
        click.echo(f"{'? ' if address in current.pending else ''}{address}")
    return 0


@state.command("show")
@click.argument("address")
@_STATE
def state_show(address: str, state_path: str) -> int:
    """Show everything recorded for ADDRESS, as JSON."""
    current = JsonFileStateStore(state_path).load()
    data = render.state_dict(current)
    entry = {key: data[key][address] for key in ("purchases", "pending") if address in data[key]}
    if not entry:
        raise ReconcilerError(f"{address} is not in the state {state_path}")
    click.echo(json.dumps({"address": address, **entry}, indent=2, sort_keys=True))
    return 0


_YES = click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")


def _confirm(question: str, yes: bool) -> None:
    if yes or not sys.stdin.isatty():
        return
    if not click.confirm(question, default=False, err=True):
        raise click.exceptions.Abort()


@state.command("rm")
@click.argument("address")
@_STATE
@_YES
def state_rm(address: str, state_path: str, yes: bool) -> int:
    """Forget the purchase recorded at ADDRESS (the licences are not cancelled)."""
    store = JsonFileStateStore(state_path)
    with store.lock("reconciler state rm") as writer:
        if address in writer.state.pending:
            raise ReconcilerError(
                f"{address} has a pending checkout; resolve it first with "
                f"`reconciler state resolve {address} --purchased|--not-purchased`"
            )
        recorded = writer.state.purchases.get(address)
        if recorded is None:
            raise ReconcilerError(f"{address} is not recorded in {state_path}")
        _confirm(f"Forget {address} ({render.seats(recorded.quantity)})?", yes)
        writer.remove_purchase(address)
    click.echo(
        f"Removed {address} ({render.seats(recorded.quantity)}) from {state_path}. "
        "The licences themselves were not cancelled."
    )
    return 0


@state.command("import")
@click.argument("address")
@click.option("--quantity", required=True, type=click.IntRange(min=1), help="Seats already bought.")
@click.option(
    "--config",
    "config_path",
    default=".",
    show_default=True,
    type=click.Path(path_type=str),
    help="Declarations to take the identity of ADDRESS from.",
)
@_STATE
@_YES
def state_import(address: str, quantity: int, config_path: str, state_path: str, yes: bool) -> int:
    """Record seats bought outside the reconciler, without buying anything.

    The identity (tenant, product, sku, terms) comes from the declaration of ADDRESS.
    """
    declared = config.load(config_path).by_address().get(address)
    if declared is None:
        raise ReconcilerError(f"{address} is not declared in {config_path}; declare it first")
    store = JsonFileStateStore(state_path)
    with store.lock("reconciler state import") as writer:
        if address in writer.state.purchases or address in writer.state.pending:
            raise ReconcilerError(f"{address} is already in the state {state_path}")
        _confirm(f"Record {render.seats(quantity)} at {address} as already bought?", yes)
        writer.import_purchase(address, declared.identity, quantity, utc_now())
    click.echo(f"Imported {address}: {render.seats(quantity)} recorded, nothing bought.")
    return 0


@state.command("resolve")
@click.argument("address")
@click.option(
    "--purchased", is_flag=True, help="The pending checkout went through: record its seats."
)
@click.option(
    "--not-purchased", is_flag=True, help="The pending checkout did not go through: drop it."
)
@_STATE
def state_resolve(address: str, purchased: bool, not_purchased: bool, state_path: str) -> int:
    """Settle the pending checkout at ADDRESS once you know its outcome.

    Check the order in Crayon Cloud-iQ (its externalOrderId is shown by
    `reconciler show`) before answering.
    """
    if purchased == not_purchased:
        raise click.UsageError("say what happened: either --purchased or --not-purchased")
    store = JsonFileStateStore(state_path)
    with store.lock("reconciler state resolve") as writer:
        pending = writer.state.pending.get(address)
        if pending is None:
            raise ReconcilerError(f"{address} has no pending checkout in {state_path}")
        if purchased:
            writer.record_checkout(
                address,
                pending.identity,
                CheckoutRecord(pending.external_order_id, pending.quantity, pending.time),
            )
            total = writer.state.purchases[address].quantity
            click.echo(
                f"Resolved {address}: {pending.external_order_id} recorded as purchased "
                f"(+{pending.quantity}, {render.seats(total)} in total)."
            )
        else:
            writer.remove_pending(address)
            click.echo(
                f"Resolved {address}: {pending.external_order_id} recorded as not purchased; "
                "the next apply buys it again."
            )
    return 0


def _client(legacy_endpoints: bool) -> api.CrayonClient:
    from reconciler import api  # deferred: requests is slow to import; only apply needs it

    settings = api.ApiSettings.from_env(os.environ, legacy_endpoints=legacy_endpoints)
    return api.CrayonClient(settings)


def _verify_plan(the_plan: Plan, legacy_endpoints: bool) -> dict[str, list[api.LineError]]:
    """Ask the API's verify endpoint about every purchase and increase (never checkout)."""
    from reconciler import api  # deferred: see _client

    found: dict[str, list[api.LineError]] = {}
    with _client(legacy_endpoints) as client:
        for change in the_plan.buying():
            assert change.purchase is not None
            order = api.build_order(change.purchase, change.delta, api.new_external_order_id())
            try:
                found[change.address] = list(client.verify(order).errors)
            except ApiError as exc:
                # A refusal of this one order is shown with it; anything else
                # (credentials, connection, server errors) stops the plan.
                refused = exc.status in (400, 404, 409, 422) and api.TOKEN_PATH not in exc.url
                if exc.kind is not FailureKind.DEFINITIVE or not refused:
                    raise
                code = exc.error_code or str(exc.status)
                found[change.address] = [api.LineError(-1, code, exc.api_message or str(exc), {})]
    return found


@cli.command()
@_PATH
@_STATE
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
@_LEGACY
@_NO_COLOR
@click.pass_context
def apply(
    ctx: click.Context,
    path: str,
    state_path: str,
    plan_path: str | None,
    auto_approve: bool,
    parallelism: int,
    max_seats: int | None,
    legacy_endpoints: bool,
) -> int:
    """Buy what the plan says, each seat exactly once.

    Verifies each order, records it as pending, checks it out, and records the
    seats after each 204. A checkout whose outcome is unknown stays pending and
    stops the run; settle it with `reconciler state resolve`.
    """
    declarations = config.load(path)
    saved = planfile.read(plan_path) if plan_path else None
    store = JsonFileStateStore(state_path)
    with store.lock("reconciler apply") as writer:
        current = writer.state
        if current.pending:
            raise PlanError(_pending_message(current, state_path))
        the_plan = planner.plan(declarations, current)
        if saved is not None and plan_path is not None:
            planfile.check_fresh(saved, the_plan, plan_path)
        summary = the_plan.summary
        color = _use_color(ctx)
        click.echo(render.plan_text(the_plan, color=color), color=color)
        if summary.conflicts:
            raise PlanError(
                f"the plan has {summary.conflicts} conflict(s); nothing was bought. "
                "Fix the declarations (a purchase cannot be undone or changed in place)"
            )
        if max_seats is not None and summary.seats > max_seats:
            raise PlanError(
                f"the plan buys {summary.seats} seats, more than --max-seats {max_seats}; "
                "nothing was bought"
            )
        if not summary.has_purchases:
            return 0
        client = _client(legacy_endpoints)
        if not auto_approve and not sys.stdin.isatty():
            raise PlanError(
                "apply needs confirmation and there is no terminal to ask on; "
                "pass --auto-approve to apply without asking"
            )
        if not auto_approve:
            answer = click.prompt(
                "\nDo you want to buy these licences? Only 'yes' will be accepted",
                default="",
                show_default=False,
                err=True,
            )
            if answer != "yes":
                click.echo("Apply cancelled; nothing was bought.", err=True)
                return 1
        from reconciler import api  # deferred: see _client

        with client:
            result = executor.apply(
                the_plan,
                client=client,
                writer=writer,
                build_order=api.build_order,
                new_order_id=api.new_external_order_id,
                now=utc_now,
                on_event=_progress(color),
                parallelism=parallelism,
            )
    click.echo("")
    click.echo(render.apply_table(result))
    click.echo(render.apply_summary(result))
    if result.count(Outcome.PENDING):
        click.echo(_pending_message(store.load(), state_path), err=True)
    return 0 if result.ok else 1


def _progress(color: bool) -> Callable[[executor.Event], None]:
    def on_event(event: executor.Event) -> None:
        if event.kind == "finished" and event.result is not None:
            click.echo(render.apply_progress(event.result, color=color), color=color)
            for line in event.result.errors:
                click.echo(f"    {line}", err=True)

    return on_event


def _pending_message(current: State, state_path: str) -> str:
    lines = [
        f"the state has {len(current.pending)} pending checkout(s) whose outcome is unknown; "
        "nothing will be bought until each is resolved.",
        "Check each order in Crayon Cloud-iQ by its externalOrderId, then run one of:",
    ]
    flag = "" if state_path == "reconciler.state.json" else f" --state {shlex.quote(state_path)}"
    for address, op in sorted(current.pending.items()):
        lines.append(
            f"  {address}: {render.seats(op.quantity)}, externalOrderId {op.external_order_id}"
        )
        lines.append(f"    reconciler state resolve {address} --purchased{flag}")
        lines.append(f"    reconciler state resolve {address} --not-purchased{flag}")
    return "\n".join(lines)


def _parse_fault(text: str) -> tuple[str, int, int, str | None]:
    parts = text.split(":")
    if not 2 <= len(parts) <= 4 or not all(p.isdigit() for p in parts[1:3]):
        raise click.BadParameter(
            f"{text!r} is not ENDPOINT:STATUS[:COUNT[:RETRY_AFTER]]", param_hint="'--fail'"
        )
    count = int(parts[2]) if len(parts) > 2 else 1
    return parts[0], int(parts[1]), count, parts[3] if len(parts) > 3 else None


@cli.command("simulator")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="Port on 127.0.0.1 (0 picks a free one).",
)
@click.option(
    "--catalog",
    type=click.Path(exists=True, dir_okay=False, path_type=str),
    help="YAML or JSON catalogue of products and tenants (default: built-in).",
)
@click.option(
    "--latency",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Milliseconds added to every answer.",
)
@click.option(
    "--token-ttl",
    type=click.FloatRange(min=1),
    default=3600.0,
    show_default=True,
    help="Token lifetime in seconds.",
)
@click.option(
    "--token-ttl-calls",
    type=click.IntRange(min=1),
    default=None,
    help="Token lifetime in API calls (expires after that many).",
)
@click.option(
    "--fail",
    "faults",
    multiple=True,
    metavar="ENDPOINT:STATUS[:COUNT[:RETRY_AFTER]]",
    help="Answer the next COUNT calls of ENDPOINT (token, verify, checkout, orders, "
    "subscriptions) with STATUS. Repeatable.",
)
@click.option(
    "--drop-after-checkout",
    type=click.IntRange(min=0),
    default=0,
    help="Record the next N checkouts, then drop the connection without answering.",
)
@click.option(
    "--hold-checkouts",
    type=click.FloatRange(min=0),
    default=0.0,
    help="Record each checkout, then wait this many seconds before answering.",
)
@click.option("--verbose", is_flag=True, help="Log every request to stderr.")
def simulator_command(
    port: int,
    catalog: str | None,
    latency: float,
    token_ttl: float,
    token_ttl_calls: int | None,
    faults: tuple[str, ...],
    drop_after_checkout: int,
    hold_checkouts: float,
    verbose: bool,
) -> int:
    """Run the built-in Crayon API simulator on 127.0.0.1 until interrupted.

    It answers the token, verify, checkout, orders and subscriptions endpoints
    like the real API, with programmable faults, so you can try plans and
    applies without buying anything.
    """
    from reconciler import simulator  # deferred: only this command needs it

    parsed = [_parse_fault(text) for text in faults]
    sim = simulator.Simulator(
        port=port,
        token_ttl_seconds=token_ttl,
        token_ttl_calls=token_ttl_calls,
        latency=latency / 1000,
        verbose=verbose,
    )
    if catalog:
        sim.load_catalog_file(catalog)
    try:
        for endpoint, status, count, retry_after in parsed:
            sim.fail_next(endpoint, status, count, retry_after)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--fail'") from None
    if drop_after_checkout:
        sim.drop_after_checkout(drop_after_checkout)
    if hold_checkouts:
        sim.hold_checkouts(hold_checkouts)
    try:
        url = sim.start()
    except OSError as exc:
        raise ReconcilerError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from None
    click.echo(f"Crayon API simulator listening on {url}")
    click.echo("Point the reconciler at it (these are the simulator's own test credentials):")
    for name, value in sim.env().items():
        click.echo(f"  export {name}={value}")
    click.echo("Press Ctrl-C to stop.")
    simulator.serve_forever(sim)
    click.echo("Simulator stopped.")
    return 0


@cli.command()
def demo() -> int:
    """Try the whole cycle safely: validate, plan, apply, plan again.

    Copies the bundled examples/ to a temporary directory, starts the simulator
    on a free loopback port, and runs each command as you would type it. Nothing
    is bought for real and nothing is left running.
    """
    from reconciler import resources, simulator  # deferred: only this command needs them

    steps = [
        (["validate", "examples"], 0),
        (["plan", "examples"], 0),
        (["apply", "examples", "--auto-approve"], 0),
        (["plan", "examples", "--detailed-exitcode"], 0),
        (["show"], 0),
    ]
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    with (
        tempfile.TemporaryDirectory(prefix="reconciler-demo-") as tmp,
        simulator.Simulator() as sim,
    ):
        shutil.copytree(resources.examples_dir(), Path(tmp) / "examples")
        os.environ.update(sim.env())
        os.environ.pop("RECONCILER_STATE", None)
        os.chdir(tmp)
        try:
            click.echo(f"# In {tmp}, with the simulator on {sim.url} and its credentials exported:")
            for args, expected in steps:
                click.echo(f"\n$ reconciler {' '.join(args)}")
                code = cli.main(args, standalone_mode=False)
                if code != expected:
                    raise ReconcilerError(
                        f"demo step `reconciler {' '.join(args)}` exited {code}, not {expected}"
                    )
        finally:
            os.chdir(saved_cwd)
            os.environ.clear()
            os.environ.update(saved_env)
    click.echo(
        "\nDemo complete: every declared seat bought once; the second plan had nothing to buy."
    )
    return 0


def main() -> None:
    """Console-script entry point."""
    cli.main()
