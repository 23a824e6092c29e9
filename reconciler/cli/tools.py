"""``reconciler simulator`` and ``reconciler demo``: the built-in API to try things on."""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING

import click

from reconciler.errors import ReconcilerError

if TYPE_CHECKING:
    from reconciler.simulator import Simulator


def _parse_fault(text: str) -> tuple[str, int, int, str | None]:
    parts = text.split(":")
    if not 2 <= len(parts) <= 4 or not all(p.isdigit() for p in parts[1:3]):
        raise click.BadParameter(
            f"{text!r} is not ENDPOINT:STATUS[:COUNT[:RETRY_AFTER]]", param_hint="'--fail'"
        )
    count = int(parts[2]) if len(parts) > 2 else 1
    return parts[0], int(parts[1]), count, parts[3] if len(parts) > 3 else None


@click.command("simulator")
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
    help="YAML or JSON file of tenants and products to use instead of the built-in ones "
    "(format: docs/simulator.md).",
)
@click.option(
    "--latency",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Milliseconds added to every answer.",
)
@click.option(
    "--rate-limit",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="N",
    help="Take at most N requests a second; answer 429 with Retry-After above.",
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
    "subscriptions, subscription, update, asset-orders, agreement-products, me) with "
    "STATUS, without acting on them. Repeatable.",
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
@click.option(
    "--fail-checkout-unrecorded",
    type=click.IntRange(min=0),
    default=0,
    help="Answer the next N valid checkouts 500 without recording them (nothing bought).",
)
@click.option(
    "--list-shape",
    type=click.Choice(["envelope", "bare"]),
    default="envelope",
    show_default=True,
    help="How lists are answered: {Items, TotalHits} (what Crayon's SDKs read) or a bare "
    "JSON array (what Crayon's published API document declares).",
)
@click.option(
    "--max-page-size",
    type=click.IntRange(min=1),
    default=None,
    help="Answer at most this many items per page, whatever pageSize asks for.",
)
@click.option("--verbose", is_flag=True, help="Log every request to stderr.")
def simulator_command(
    port: int,
    catalog: str | None,
    latency: float,
    rate_limit: float | None,
    token_ttl: float,
    token_ttl_calls: int | None,
    faults: tuple[str, ...],
    drop_after_checkout: int,
    hold_checkouts: float,
    fail_checkout_unrecorded: int,
    list_shape: str,
    max_page_size: int | None,
    verbose: bool,
) -> int:
    """Run the built-in Crayon API simulator on 127.0.0.1 until interrupted.

    It answers the token, verify, checkout, processed orders, subscriptions (the
    list, one subscription and its update), asset orders and agreement products
    endpoints like the real API, with programmable faults, so you can try plans and
    applies without buying anything. POST /_admin/portal changes subscriptions as a person in the
    Cloud-iQ portal would (see docs/simulator.md).

    Without --catalog it knows these customer tenants: 100001, 100002, 100003,
    111111, 123456, 222222, 333333; and these products (productId:skuId, any of
    them P1M or P1Y, billed monthly or annually, at most 300 seats per order
    unless said; plausible monthly list prices per seat, not Crayon's):

    \b
      CFQ7TTC0LF8R:0010  Microsoft 365 Business Basic       EUR  5.60
      CFQ7TTC0LDPB:0001  Microsoft 365 Business Standard    EUR 11.70
      CFQ7TTC0LH18:0001  Microsoft 365 Business Premium     EUR 20.60
      CFQ7TTC0LFLZ:0002  Microsoft 365 E3                   EUR 33.75
      CFQ7TTC0LFK5:0002  Microsoft 365 E5                   EUR 54.75
      CFQ7TTC0LH1G:0001  Exchange Online (Plan 1)           EUR  3.75
      CFQ7TTC0LHSF:0001  Microsoft Teams Essentials         EUR  3.75  (at most 20)
      CFQ7TTC0LCHC:0002  Power BI Pro                       EUR 13.10
      CFQ7TTC0MM8R:0002  Visio Plan 2                       EUR 14.10
      CFQ7TTC0HD33:0001  Project Plan 3                     EUR 28.10
      DG7GMGF0D7FV:0001  Windows 10/11 Enterprise E3        EUR  6.80
    """
    from reconciler import simulator  # deferred: only this command needs it

    parsed = [_parse_fault(text) for text in faults]
    sim = simulator.Simulator(
        port=port,
        token_ttl_seconds=token_ttl,
        token_ttl_calls=token_ttl_calls,
        latency=latency / 1000,
        rate_limit=rate_limit,
        verbose=verbose,
        list_shape=list_shape,
        max_page_size=max_page_size,
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
    if fail_checkout_unrecorded:
        sim.fail_checkout_unrecorded(fail_checkout_unrecorded)
    if hold_checkouts:
        sim.hold_checkouts(hold_checkouts)
    _serve(sim, port)
    return 0


def _serve(sim: Simulator, port: int) -> None:
    """Start ``sim``, print how to point the reconciler at it, and serve until Ctrl-C."""
    from reconciler import simulator

    try:
        url = sim.start()
    except OSError as exc:
        raise ReconcilerError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from None
    click.echo(f"Crayon API simulator listening on {url}")
    click.echo("Point the reconciler at it (these are the simulator's own test credentials):")
    for name, value in sim.env().items():
        click.echo(f"  export {name}={value}")
    click.echo("Press Ctrl-C to stop.")
    gc.enable()  # a server runs until stopped: collect its cycles (``cli.main`` turned it off)
    simulator.serve_forever(sim)
    click.echo("Simulator stopped.")


@click.command()
def demo() -> int:
    """Try the whole cycle safely, against the built-in simulator.

    Plans, kills an apply while the API holds its first checkout and lets the next
    apply recover it alone, adds seats in the portal, and lowers seats inside and
    outside Microsoft's cancellation window.

    Copies the bundled examples/ to a temporary directory, starts the simulator on
    a free loopback port, and runs each command as you would type it. Nothing is
    bought for real and nothing is left running.
    """
    from reconciler.cli.demo import run_demo  # deferred: only this command needs it

    run_demo()
    return 0


#: The distributions ``version`` reports: the runtime dependencies and the extra's.
DEPENDENCIES = ("PyYAML", "jsonschema", "requests", "click", "psycopg")


@click.command("version")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout.")
def version_command(as_json: bool) -> int:
    """Show the versions of the tool, Python, its dependencies and its formats.

    The formats are those of the state file, saved plans and plan --json, apply --json
    events and the PostgreSQL schema; paste the output into a bug report.
    """
    import json
    import platform
    from importlib import metadata

    from reconciler import __version__
    from reconciler.model import STATE_VERSION
    from reconciler.render.about import About, about_dict, about_text
    from reconciler.render.events import EVENTS_FORMAT_VERSION
    from reconciler.render.jsonplan import PLAN_FORMAT_VERSION
    from reconciler.state.pgschema import MIGRATIONS

    def installed(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    about = About(
        tool=__version__,
        python=platform.python_version(),
        dependencies={name: installed(name) for name in DEPENDENCIES},
        formats={
            "state": STATE_VERSION,
            "plan": PLAN_FORMAT_VERSION,
            "apply_events": EVENTS_FORMAT_VERSION,
            "postgres_schema": len(MIGRATIONS),
        },
    )
    click.echo(json.dumps(about_dict(about), indent=2) if as_json else about_text(about))
    return 0
