"""A Crayon Cloud-iQ API simulator: real HTTP on 127.0.0.1, for tests and demos.

It is the **independent test oracle** of the client and the **backend of the
demo** (``reconciler demo``, ``reconciler simulator``). It speaks the API as
the project's API reference, ``crayon-api.md`` (/work/shared/crayon-api.md),
describes it: the token, verify, checkout (primary and legacy paths),
processed-orders, subscriptions, asset-orders and agreement-products endpoints.
It records every accepted checkout (each line a processed order and a
subscription of its own, the order findable by its externalOrderId), takes
portal changes (``Simulator.portal_*`` or ``POST /_admin/portal``) and can
inject the failures the client must survive (error statuses, Retry-After,
dropped connections or 500s after a checkout was taken, 500s before it was,
slow answers, expired tokens).

It must not import ``reconciler.api`` or ``reconciler.model`` (a test guards
this): an oracle that shared the client's order format, field names or
classification would share its bugs and agree with them. It imports the
standard library, PyYAML (catalogue files) and ``reconciler.errors``, which is
stdlib-only and holds no client logic: ``CatalogError`` is a
``ReconcilerError`` so that the CLI's error boundary prints a bad catalogue as
``error: ...``. It binds to loopback only, keeps everything in memory and
writes nothing to stderr unless ``verbose`` is set.

    facade.py   Simulator (start/stop, inspection, the portal), serve_forever
    injection.py FaultInjection: the fault-injection methods Simulator inherits
    server.py   LoopbackServer, Dispatcher: routing, token/auth, verify, checkout
    paging.py   the list endpoints: tenant and paging parameters, one page of items
    portal.py   POST /_admin/portal: the portal's changes over HTTP
    ledger.py   Ledger: catalogue, tenants, verified orders, checkouts, processed
                orders, subscriptions (and the portal's changes to them), calls
    tokens.py   Tokens: the bearer tokens issued (part of the Ledger)
    listings.py OrderRecord, SubscriptionRecord and the JSON items of the four lists
    faults.py   Faults: queued failures, delays, drops, unrecorded 500s, holds, order errors
    orders.py   order rules: shape/type problems, line errors, camelCase, checkout records
    catalog.py  CatalogItem (with its price), default_catalog, load_catalog, CatalogError
    wire.py     answers (Reply, Drop), the API's error body, JSON helpers
"""

from __future__ import annotations

from reconciler.simulator.catalog import (
    CatalogError,
    CatalogItem,
    default_catalog,
    load_catalog,
)
from reconciler.simulator.facade import Simulator, serve_forever
from reconciler.simulator.ledger import RecordedCall, RecordedRequest
from reconciler.simulator.listings import OrderRecord, SubscriptionRecord
from reconciler.simulator.orders import COUNTRY_CODE, RecordedCheckout
from reconciler.simulator.paging import DEFAULT_PAGE_SIZE
from reconciler.simulator.wire import ENDPOINTS

__all__ = [
    "COUNTRY_CODE",
    "DEFAULT_PAGE_SIZE",
    "ENDPOINTS",
    "CatalogError",
    "CatalogItem",
    "OrderRecord",
    "RecordedCall",
    "RecordedCheckout",
    "RecordedRequest",
    "Simulator",
    "SubscriptionRecord",
    "default_catalog",
    "load_catalog",
    "serve_forever",
]
