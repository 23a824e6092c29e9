"""``reconciler state ...``: inspect and repair the state. Never calls the API."""

from __future__ import annotations

import json

import click

from reconciler import config
from reconciler.cli.common import YES, StateRef, check_workspace, confirm, state_options
from reconciler.commands import state as state_commands
from reconciler.errors import ReconcilerError
from reconciler.render import repairs
from reconciler.state import utc_now
from reconciler.state.jsonrender import render as render_state_file


@click.command()
@state_options()
def init(state: StateRef) -> int:
    """Create an empty state: a file, or a workspace in a PostgreSQL database.

    The only way to start a state (besides `state migrate`): every other command
    refuses a state that does not exist, so a lost or mistyped state can never
    read as "nothing bought yet". On a database it also creates the schema.
    Changes nothing when the state already exists.
    """
    store = state.open()
    created, current = state_commands.create(store)
    click.echo(repairs.initialized(created, store.location, current))
    return 0


@click.group()
def state() -> None:
    """Inspect and repair the state. Never calls the API."""


@state.command("list")
@state_options()
def state_list(state: StateRef) -> int:
    """List the recorded addresses (pending ones marked with '?')."""
    for address, pending in state_commands.addresses(state.open().load()):
        click.echo(f"{'? ' if pending else ''}{address}")
    return 0


@state.command("show")
@click.argument("address")
@state_options()
def state_show(address: str, state: StateRef) -> int:
    """Show everything recorded for ADDRESS, as JSON."""
    store = state.open()
    entry = state_commands.entry(store.load(), address, store.location)
    click.echo(json.dumps(entry, indent=2, sort_keys=True))
    return 0


@state.command("rm")
@click.argument("address")
@click.option(
    "--config",
    "config_path",
    default=".",
    show_default=True,
    type=click.Path(path_type=str),
    help="Declarations to check ADDRESS against (to warn when it is still declared).",
)
@state_options(lock=True)
@YES
def state_rm(address: str, config_path: str, state: StateRef, yes: bool) -> int:
    """Forget the purchase recorded at ADDRESS (the licences are not cancelled)."""
    store = state.open()
    seats = state_commands.remove(store, address, confirm=confirm(yes))
    click.echo(repairs.removed(address, seats, store.location))
    try:
        declared = address in config.load(config_path).by_address()
    except ReconcilerError:
        # The warning is a courtesy: declarations that do not load are not rm's business.
        declared = False
    if declared:
        click.echo(repairs.still_declared(address, config_path), err=True)
    return 0


@state.command("mv")
@click.argument("source", metavar="FROM")
@click.argument("target", metavar="TO")
@state_options(lock=True)
@YES
def state_mv(source: str, target: str, state: StateRef, yes: bool) -> int:
    """Move the purchase recorded at FROM, with its checkouts, to TO.

    Nothing is bought or cancelled. For a renamed declaration; `moved:` in the
    declarations does the same at apply.
    """
    store = state.open()
    seats = state_commands.move(store, source, target, confirm=confirm(yes))
    click.echo(repairs.moved(source, target, seats, store.location))
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
@state_options(lock=True)
@YES
def state_import(address: str, quantity: int, config_path: str, state: StateRef, yes: bool) -> int:
    """Record seats bought outside the reconciler, without buying anything.

    The identity (tenant, product, sku, terms) comes from the declaration of ADDRESS.
    """
    state_commands.import_seats(
        state.open(),
        config.load(config_path),
        address,
        quantity,
        config_path=config_path,
        now=utc_now,
        confirm=confirm(yes),
    )
    click.echo(repairs.imported(address, quantity))
    return 0


@state.command("resolve")
@click.argument("address")
@click.option(
    "--purchased", is_flag=True, help="The pending checkout went through: record its seats."
)
@click.option(
    "--not-purchased", is_flag=True, help="The pending checkout did not go through: drop it."
)
@state_options(lock=True)
def state_resolve(address: str, purchased: bool, not_purchased: bool, state: StateRef) -> int:
    """Settle the pending checkout at ADDRESS once you know its outcome.

    Check the order in Crayon Cloud-iQ (its externalOrderId is shown by
    `reconciler show`) before answering.
    """
    if purchased == not_purchased:
        raise click.UsageError("say what happened: either --purchased or --not-purchased")
    done = state_commands.resolve(state.open(), address, purchased=purchased)
    click.echo(repairs.resolved(address, done))
    return 0


@state.command("pull")
@state_options()
def state_pull(state: StateRef) -> int:
    """Print the whole state in the state file's JSON format on stdout."""
    click.echo(render_state_file(state.open().load()), nl=False)
    return 0


@state.command("migrate")
@state_options(lock=True)
@click.option(
    "--to",
    "target",
    required=True,
    metavar="LOC",
    help="Where to copy the state: a file path or a postgresql:// URL (must be new or empty).",
)
@click.option(
    "--to-workspace",
    callback=check_workspace,
    default="default",
    show_default=True,
    help="The workspace to create when --to is a database.",
)
def state_migrate(state: StateRef, target: str, to_workspace: str) -> int:
    """Copy the whole state (lineage, serial, purchases, pending) to LOC.

    The source stays locked while it is copied and is left as it was; point
    --state (or RECONCILER_STATE) at the target afterwards.
    """
    target_ref = StateRef(target, to_workspace)
    copied = state_commands.migrate(state.open(), target_ref.open())
    click.echo(repairs.migrated(copied, target_ref.open().location))
    return 0


@state.command("history")
@state_options()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout.")
def state_history(state: StateRef, as_json: bool) -> int:
    """Show every write made to a database state: who wrote what, and when."""
    entries = state_commands.history(state.open())
    if as_json:
        click.echo(json.dumps(entries, indent=2, sort_keys=True))
        return 0
    for entry in entries:
        click.echo(repairs.history_line(entry))
    return 0
