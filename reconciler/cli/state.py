"""``reconciler state ...``: inspect and repair the state. Never calls the API."""

from __future__ import annotations

import json

import click

from reconciler import config, render
from reconciler.cli.common import STATE, YES, confirm, open_store
from reconciler.commands import state as state_commands
from reconciler.state import utc_now


@click.group()
def state() -> None:
    """Inspect and repair the state. Never calls the API."""


@state.command("list")
@STATE
def state_list(state_path: str) -> int:
    """List the recorded addresses (pending ones marked with '?')."""
    for address, pending in state_commands.addresses(open_store(state_path).load()):
        click.echo(f"{'? ' if pending else ''}{address}")
    return 0


@state.command("show")
@click.argument("address")
@STATE
def state_show(address: str, state_path: str) -> int:
    """Show everything recorded for ADDRESS, as JSON."""
    store = open_store(state_path)
    entry = state_commands.entry(store.load(), address, store.location)
    click.echo(json.dumps(entry, indent=2, sort_keys=True))
    return 0


@state.command("rm")
@click.argument("address")
@STATE
@YES
def state_rm(address: str, state_path: str, yes: bool) -> int:
    """Forget the purchase recorded at ADDRESS (the licences are not cancelled)."""
    seats = state_commands.remove(open_store(state_path), address, confirm=confirm(yes))
    click.echo(
        f"Removed {address} ({render.seats(seats)}) from {state_path}. "
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
@STATE
@YES
def state_import(address: str, quantity: int, config_path: str, state_path: str, yes: bool) -> int:
    """Record seats bought outside the reconciler, without buying anything.

    The identity (tenant, product, sku, terms) comes from the declaration of ADDRESS.
    """
    state_commands.import_seats(
        open_store(state_path),
        config.load(config_path),
        address,
        quantity,
        config_path=config_path,
        now=utc_now,
        confirm=confirm(yes),
    )
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
@STATE
def state_resolve(address: str, purchased: bool, not_purchased: bool, state_path: str) -> int:
    """Settle the pending checkout at ADDRESS once you know its outcome.

    Check the order in Crayon Cloud-iQ (its externalOrderId is shown by
    `reconciler show`) before answering.
    """
    if purchased == not_purchased:
        raise click.UsageError("say what happened: either --purchased or --not-purchased")
    done = state_commands.resolve(open_store(state_path), address, purchased=purchased)
    order = done.pending.external_order_id
    if purchased:
        click.echo(
            f"Resolved {address}: {order} recorded as purchased "
            f"(+{done.pending.quantity}, {render.seats(done.total)} in total)."
        )
    else:
        click.echo(
            f"Resolved {address}: {order} recorded as not purchased; the next apply buys it again."
        )
    return 0
