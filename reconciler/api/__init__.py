"""The Crayon Cloud-iQ API: the only package that imports ``requests``.

    settings    ApiSettings (CRAYON_* variables, base-URL checks), RetryPolicy, paths
    orders      the order wire format: build_order -> OrderJson, VerifiedOrder,
                LineError, the ApiClient role the executor codes against
    failures    pure classification: classify_status, classify_transport,
                refuses_order, retry_after, error_body
    transport   the HTTP seam: RequestsTransport.send, ApiRequest, scrubbed ApiErrors
    records     what Cloud-iQ says was bought: Subscription, ProcessedOrder,
                AssetOrder, CatalogEntry, Price, the ApiReader role
    reads       the pure parse_* functions from list items to records (re-exports them)
    fields      typed, case-insensitive reads of one JSON item's fields
    client      CrayonClient: token, verify, checkout; retries and 401s
    readers     ListReader: the paged lists and typed reads CrayonClient delegates to

Importing this package stays cheap: it re-exports only what needs no
``requests`` (settings, orders, reads, failures); code that talks to the API imports
``reconciler.api.client``. ``DEFAULT_API_URL`` is not re-exported: it is read
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
    from reconciler.api.orders import (
        ApiClient,
        LineError,
        OrderJson,
        OrderLineJson,
        VerifiedOrder,
        build_order,
        new_external_order_id,
        read_verified,
    )
    from reconciler.api.reads import (
        STATUS_ACTIVE,
        ApiReader,
        AssetOrder,
        AssetOrderLine,
        CatalogEntry,
        Price,
        ProcessedOrder,
        Subscription,
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
    "OrderJson",
    "OrderLineJson",
    "Price",
    "ProcessedOrder",
    "RetryPolicy",
    "Subscription",
    "TransportFailure",
    "VerifiedOrder",
    "build_order",
    "classify_status",
    "classify_transport",
    "error_body",
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
        "new_external_order_id": "orders",
        "read_verified": "orders",
        "ApiReader": "reads",
        "AssetOrder": "reads",
        "AssetOrderLine": "reads",
        "CatalogEntry": "reads",
        "Price": "reads",
        "ProcessedOrder": "reads",
        "STATUS_ACTIVE": "reads",
        "Subscription": "reads",
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
