"""``python -m reconciler.simulator``: serve the simulator with its list options.

For a client that is not the reconciler (an SDK, curl) and for the list shapes:
``--list-shape bare`` answers lists as bare arrays (as Crayon's published
document declares them), ``--max-page-size N`` caps every page at N items,
``--rate-limit N`` takes at most N requests a second (429 with Retry-After above). The
fault options live on ``reconciler simulator``. Standard library only (argparse):
the simulator does not import click.
"""

from __future__ import annotations

import argparse
import sys

from reconciler.errors import ReconcilerError
from reconciler.simulator.facade import Simulator, serve_forever
from reconciler.simulator.wire import LIST_SHAPES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m reconciler.simulator",
        description="Serve the Crayon API simulator on 127.0.0.1 until interrupted.",
    )
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--catalog", help="a YAML or JSON catalogue file (docs/simulator.md)")
    parser.add_argument("--list-shape", choices=LIST_SHAPES, default="envelope")
    parser.add_argument("--max-page-size", type=int, default=None, metavar="N")
    parser.add_argument(
        "--rate-limit",
        type=float,
        default=None,
        metavar="N",
        help="take at most N requests a second; answer 429 with Retry-After above",
    )
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    options = parser.parse_args(argv)
    if options.max_page_size is not None and options.max_page_size < 1:
        parser.error("--max-page-size must be at least 1")
    if options.rate_limit is not None and not options.rate_limit > 0:
        parser.error("--rate-limit must be a positive number")
    if not 0 <= options.port <= 65535:
        parser.error("--port must be between 0 and 65535")
    sim = Simulator(
        port=options.port,
        list_shape=options.list_shape,
        max_page_size=options.max_page_size,
        rate_limit=options.rate_limit,
        verbose=options.verbose,
    )
    try:
        if options.catalog:
            sim.load_catalog_file(options.catalog)
        url = sim.start()
    except ReconcilerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(
            f"error: cannot listen on 127.0.0.1:{options.port}: {error.strerror}", file=sys.stderr
        )
        return 1
    print(f"Crayon API simulator listening on {url} (lists: {options.list_shape})", flush=True)
    for name, value in sim.env().items():
        print(f"  export {name}={value}", flush=True)
    serve_forever(sim)
    return 0


if __name__ == "__main__":
    sys.exit(main())
