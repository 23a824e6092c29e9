"""The reconciler's records: declarations, state, plans, results.

Validated data becomes these immutable records at the edges (``config``,
``state``, ``api``); raw dicts never travel further. This package holds data and
pure helpers only: it performs no I/O and imports nothing outside the standard
library.

    declarations  addresses, identities, purchases, ``moved:`` entries, ``Declarations``
    records       the recorded state: purchases, checkouts, adjustments, pending entries
    plans         the action table (``ACTIONS``), ``Change``, ``Summary``, ``Plan``
    results       what apply did: ``Outcome``, ``ChangeResult``, ``Event``, ``ApplyResult``
"""

from reconciler.model.declarations import (
    ADDRESS_MAX_LENGTH,
    ADDRESS_PATTERN,
    ADDRESS_SEGMENT_PATTERN,
    BILLING_CYCLES,
    IDENTITY_FIELDS,
    PURCHASE_TYPES,
    TAG_KEYS,
    TERM_DURATIONS,
    Adopt,
    Declarations,
    Identity,
    Location,
    Move,
    Purchase,
    Removal,
    is_address,
    is_address_segment,
)
from reconciler.model.plans import (
    ACTIONS,
    BLOCKING_ACTIONS,
    BUYING_ACTIONS,
    Action,
    ActionInfo,
    Change,
    Executor,
    Plan,
    Summary,
    is_target,
    targeted,
)
from reconciler.model.records import (
    GONE_STATUSES,
    HOLDING_STATUSES,
    REFRESH_SOURCE,
    STATE_VERSION,
    Adjustment,
    CheckoutRecord,
    PendingOperation,
    RecordedPurchase,
    State,
    SubscriptionChange,
    UpdateField,
    UpdateRecord,
    describe_subscriptions,
)
from reconciler.model.results import (
    ApplyResult,
    ChangeResult,
    Event,
    Outcome,
)

__all__ = [
    "ACTIONS",
    "ADDRESS_MAX_LENGTH",
    "ADDRESS_PATTERN",
    "ADDRESS_SEGMENT_PATTERN",
    "BILLING_CYCLES",
    "BLOCKING_ACTIONS",
    "BUYING_ACTIONS",
    "GONE_STATUSES",
    "HOLDING_STATUSES",
    "IDENTITY_FIELDS",
    "PURCHASE_TYPES",
    "REFRESH_SOURCE",
    "STATE_VERSION",
    "TAG_KEYS",
    "TERM_DURATIONS",
    "Action",
    "ActionInfo",
    "Adjustment",
    "Adopt",
    "ApplyResult",
    "Change",
    "ChangeResult",
    "CheckoutRecord",
    "Declarations",
    "Event",
    "Executor",
    "Identity",
    "Location",
    "Move",
    "Outcome",
    "PendingOperation",
    "Plan",
    "Purchase",
    "RecordedPurchase",
    "Removal",
    "State",
    "SubscriptionChange",
    "Summary",
    "UpdateField",
    "UpdateRecord",
    "describe_subscriptions",
    "is_address",
    "is_address_segment",
    "is_target",
    "targeted",
]
