"""The Crayon Cloud-iQ API: the only package that imports ``requests``.

    settings    ApiSettings (CRAYON_* variables, base-URL checks), RetryPolicy, paths
    orders      the order wire format: build_order -> OrderJson, legacy_order and
                legacy_dropped_fields, VerifiedOrder, LineError, the ApiClient role
    failures    pure classification: classify_status, classify_transport,
                refuses_order, retry_after, error_body
    transport   the HTTP seam: RequestsTransport.send, ApiRequest, scrubbed ApiErrors,
                the clock skew read from every answer's Date
    records     what Cloud-iQ says: Subscription, SubscriptionDetail, ProcessedOrder,
                AssetOrder, CatalogEntry, Price, Listing (with its UnreadableItems),
                the ApiReader and SubscriptionUpdater roles
    fields      load_json (bounded JSON) and the typed, case-insensitive field reading
    items       one item of the API's JSON to one record; the API's codes in our names
    reads       the pure parse_* functions from a list's JSON to records, and
                ListReader, which reads a list endpoint to its end, parsed
    paging      Pager: every page of a list endpoint, within bounds
    calls       Caller: one call with the shared token, the 401 repeat and the
                bounded retries (TokenHolder)
    client      CrayonClient: verify, checkout, reads, get/update/cancel subscription

Importing this package stays cheap: it re-exports only what needs no
``requests`` (settings, orders, records, fields, reads, failures); code that talks to the
API imports ``reconciler.api.client``. ``DEFAULT_API_URL`` is not re-exported: it is read
from ``reconciler.api.settings`` at call time, so patch it there.

Nothing in this package prints, logs, turns TLS verification off or puts a
secret (client secret, password, access token) into a message, a repr or an
exception; nothing outside it decides whether a failed call may be retried or
whether the API refused an order (``ApiError.kind`` and ``ApiError.refused``
say so).
"""

from typing import TYPE_CHECKING

from reconciler.lazy import lazy_exports

if TYPE_CHECKING:
    from reconciler.api.failures import (
        Endpoint,
        ErrorBody,
        TransportFailure,
        classify_status,
        classify_transport,
        error_body,
        refuses_credentials,
        refuses_order,
        retry_after,
    )
    from reconciler.api.fields import UnreadableJson, load_json
    from reconciler.api.orders import (
        ApiClient,
        LineError,
        OrderJson,
        OrderLineJson,
        VerifiedOrder,
        build_order,
        legacy_dropped_fields,
        legacy_order,
        new_external_order_id,
        read_verified,
    )
    from reconciler.api.records import (
        STATUS_ACTIVE,
        STATUS_SUSPENDED,
        ApiReader,
        AssetOrder,
        AssetOrderLine,
        CatalogEntry,
        Listing,
        Price,
        ProcessedOrder,
        Subscription,
        SubscriptionDetail,
        SubscriptionUpdater,
        UnreadableItem,
    )
    from reconciler.api.settings import (
        AGREEMENT_PRODUCTS_PATH,
        ASSET_ORDERS_PATH,
        CHECKOUT_PATH,
        CREDENTIAL_VARIABLES,
        LEGACY_CHECKOUT_PATH,
        LEGACY_VERIFY_PATH,
        ORDERS_PATH,
        SUBSCRIPTIONS_PATH,
        TIMEOUT_VARIABLES,
        TOKEN_PATH,
        URL_VARIABLE,
        VERIFY_PATH,
        ApiSettings,
        RetryPolicy,
    )

__all__ = [
    "AGREEMENT_PRODUCTS_PATH",
    "ASSET_ORDERS_PATH",
    "CHECKOUT_PATH",
    "CREDENTIAL_VARIABLES",
    "LEGACY_CHECKOUT_PATH",
    "LEGACY_VERIFY_PATH",
    "ORDERS_PATH",
    "STATUS_ACTIVE",
    "STATUS_SUSPENDED",
    "SUBSCRIPTIONS_PATH",
    "TIMEOUT_VARIABLES",
    "TOKEN_PATH",
    "URL_VARIABLE",
    "VERIFY_PATH",
    "ApiClient",
    "ApiReader",
    "ApiSettings",
    "AssetOrder",
    "AssetOrderLine",
    "CatalogEntry",
    "Endpoint",
    "ErrorBody",
    "LineError",
    "Listing",
    "OrderJson",
    "OrderLineJson",
    "Price",
    "ProcessedOrder",
    "RetryPolicy",
    "Subscription",
    "SubscriptionDetail",
    "SubscriptionUpdater",
    "TransportFailure",
    "UnreadableItem",
    "UnreadableJson",
    "VerifiedOrder",
    "build_order",
    "classify_status",
    "classify_transport",
    "error_body",
    "legacy_dropped_fields",
    "legacy_order",
    "load_json",
    "new_external_order_id",
    "read_verified",
    "refuses_credentials",
    "refuses_order",
    "retry_after",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Endpoint": "failures",
        "ErrorBody": "failures",
        "TransportFailure": "failures",
        "classify_status": "failures",
        "classify_transport": "failures",
        "error_body": "failures",
        "refuses_credentials": "failures",
        "refuses_order": "failures",
        "retry_after": "failures",
        "ApiClient": "orders",
        "LineError": "orders",
        "OrderJson": "orders",
        "OrderLineJson": "orders",
        "VerifiedOrder": "orders",
        "build_order": "orders",
        "legacy_dropped_fields": "orders",
        "legacy_order": "orders",
        "new_external_order_id": "orders",
        "read_verified": "orders",
        "ApiReader": "records",
        "AssetOrder": "records",
        "AssetOrderLine": "records",
        "CatalogEntry": "records",
        "Listing": "records",
        "Price": "records",
        "ProcessedOrder": "records",
        "STATUS_ACTIVE": "records",
        "STATUS_SUSPENDED": "records",
        "Subscription": "records",
        "SubscriptionDetail": "records",
        "SubscriptionUpdater": "records",
        "UnreadableItem": "records",
        "UnreadableJson": "fields",
        "load_json": "fields",
        "AGREEMENT_PRODUCTS_PATH": "settings",
        "ASSET_ORDERS_PATH": "settings",
        "ApiSettings": "settings",
        "CHECKOUT_PATH": "settings",
        "CREDENTIAL_VARIABLES": "settings",
        "LEGACY_CHECKOUT_PATH": "settings",
        "LEGACY_VERIFY_PATH": "settings",
        "ORDERS_PATH": "settings",
        "RetryPolicy": "settings",
        "SUBSCRIPTIONS_PATH": "settings",
        "TIMEOUT_VARIABLES": "settings",
        "TOKEN_PATH": "settings",
        "URL_VARIABLE": "settings",
        "VERIFY_PATH": "settings",
    },
)
