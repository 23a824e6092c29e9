"""A Crayon Cloud-iQ API simulator: real HTTP on 127.0.0.1, for tests and demos.

It is the **independent test oracle** of the client and the **backend of the
demo** (``reconciler demo``, ``reconciler simulator``). It speaks the API as
Crayon documents it, and where Crayon's published OpenAPI document (2021) has an
endpoint, with that document's paths (ignoring case), fields and types: the
token, verify, checkout (primary and legacy paths), processed-orders,
subscriptions (the list, one subscription, and its update), asset-orders,
agreement-products, ping and me endpoints. It records every accepted checkout
(each line a processed order and a subscription of its own, the order findable
by its externalOrderId), keeps each subscription's seats with the time they were
added (Microsoft's 168-hour cancellation window applies to reductions and
cancellations), takes portal changes (``Simulator.portal_*`` or ``POST
/_admin/portal``), has a clock tests can move (``Simulator.advance_clock`` or
``POST /_admin/clock``), answers lists in either shape (``list_shape``) with an
optional page-size cap, and can inject the failures the client must survive
(error statuses, Retry-After, dropped connections or 500s after a checkout or an
update was taken, 500s before, slow answers, expired tokens).

It must not import ``reconciler.api`` or ``reconciler.model`` (a test guards
this): an oracle that shared the client's order format, field names or
classification would share its bugs and agree with them. It imports the
standard library, PyYAML (catalogue files) and ``reconciler.errors``, which is
stdlib-only and holds no client logic: ``CatalogError`` is a
``ReconcilerError`` so that the CLI's error boundary prints a bad catalogue as
``error: ...``. It binds to loopback only, keeps everything in memory and
writes nothing to stderr unless ``verbose`` is set.

    facade.py        Simulator (start/stop, inspection, the clock, the portal), serve_forever
    injection.py     FaultInjection: the fault-injection and list-lag methods Simulator
                     inherits
    server.py        LoopbackServer, Dispatcher: routing, token/auth, verify, checkout,
                     one subscription and its update, ping, me
    paging.py        the list endpoints: scope and paging parameters, one page, its shape
    portal.py        PortalChanges (the portal_* methods) and POST /_admin/portal
    clock.py         SimulatedClock and POST /_admin/clock
    cloud.py         SimulatedCloud: catalogue, tenants, clock, tokens, verified orders,
                     checkouts, processed orders, subscriptions, calls
    lags.py          ListLags: how far the lists lag behind what happened
    subscriptions.py SubscriptionRecord (seats in dated batches), the cancellation
                     window, the rules of an update, the subscription JSON
    tokens.py        Tokens: the bearer tokens issued (part of the SimulatedCloud)
    listings.py      OrderRecord and the JSON items of the four lists
    faults.py        Faults: queued failures, delays, drops, unrecorded 500s, holds,
                     order errors, update faults
    orders.py        order rules: shape/type problems, line errors, camelCase, checkout records
    catalog.py       CatalogItem (with its price), default_catalog, load_catalog, CatalogError
    wire.py          answers (Reply, Drop), the API's error body, JSON helpers
"""

from __future__ import annotations

from reconciler.simulator.catalog import (
    CatalogError,
    CatalogItem,
    default_catalog,
    load_catalog,
)
from reconciler.simulator.cloud import AppliedUpdate, RecordedCall, RecordedRequest
from reconciler.simulator.facade import Simulator, serve_forever
from reconciler.simulator.listings import OrderRecord
from reconciler.simulator.orders import COUNTRY_CODE, RecordedCheckout
from reconciler.simulator.paging import DEFAULT_PAGE_SIZE
from reconciler.simulator.subscriptions import (
    CANCELLATION_WINDOW,
    ORGANIZATION_ID,
    SeatBatch,
    SubscriptionRecord,
)
from reconciler.simulator.wire import ENDPOINTS, LIST_SHAPES

__all__ = [
    "CANCELLATION_WINDOW",
    "COUNTRY_CODE",
    "DEFAULT_PAGE_SIZE",
    "ENDPOINTS",
    "LIST_SHAPES",
    "ORGANIZATION_ID",
    "AppliedUpdate",
    "CatalogError",
    "CatalogItem",
    "OrderRecord",
    "RecordedCall",
    "RecordedCheckout",
    "RecordedRequest",
    "SeatBatch",
    "Simulator",
    "SubscriptionRecord",
    "default_catalog",
    "load_catalog",
    "serve_forever",
]
