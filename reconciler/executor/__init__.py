"""Carry out a plan: its state writes first, then every change that calls the API,
each exactly once.

``write_state`` makes the plan's moves, adoptions and forgotten addresses as
state writes only (no API call), before anything is bought or changed; a move that
adds seats is then bought like an increase (an adoption that declares more seats
than it adopts leaves them to the next apply, which plans them as an increase).

``apply`` runs every change that calls the API, dispatched on the change's
executor kind: a checkout (``checkout``: verify, a durable pending entry,
checkout, the seats recorded on 204) or updates of subscriptions (``update``: per
subscription a durable pending entry, GET and compare, PUT, the result recorded;
a lost answer settled by reading the subscription back). A definitive failure
clears the pending entry; one the API cannot settle keeps it and stops every
change not yet started.

This package never prints and never decides exit codes: it reports progress
through ``on_event`` and returns an ``ApplyResult``. It makes no HTTP call but
through the client and writes no state but through the writer.

    run        Collaborators, the run of one apply: dispatch, parallel workers
    checkout   the checkout kind
    update     the update kind
    writes     the state writes: moves, adoptions, forgotten addresses
"""

from reconciler.executor.context import Collaborators
from reconciler.executor.run import API_KINDS, apply, calling
from reconciler.executor.writes import write_state, writing

__all__ = ["API_KINDS", "Collaborators", "apply", "calling", "write_state", "writing"]
