"""The reconciler's records: declarations, state, plans.

Validated data becomes these immutable records at the edges (``config``,
``state``, ``api``); raw dicts never travel further. This module holds data and
pure helpers only: it performs no I/O and imports nothing outside the standard
library.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

#: YAML names of the billing cycle -> the API's BillingCycleType integers.
BILLING_CYCLES: Mapping[str, int] = MappingProxyType(
    {"monthly": 1, "annual": 2, "none": 3, "one-time": 4, "triennial": 5}
)
#: YAML names of the purchase type -> the API's AssetType integers.
PURCHASE_TYPES: Mapping[str, int] = MappingProxyType(
    {"reservation": 1, "software": 2, "subscription": 3}
)
TERM_DURATIONS: tuple[str, ...] = ("P1M", "P1Y", "P3Y")
TAG_KEYS: tuple[str, ...] = ("costCenter", "department", "project", "owner", "custom")

#: One segment of an address; alone, a workspace name.
ADDRESS_SEGMENT_PATTERN = r"[a-z0-9][a-z0-9._-]*"
#: A purchase address (a declaration's ``name``, a ``moved`` entry): segments separated
#: by '/'. The schema's name pattern is this one; use it only through ``fullmatch``:
#: with ``re.search`` and '$', a final newline passes and makes a second address for
#: the same licence. Its characters leave no room for a control character.
ADDRESS_PATTERN = rf"{ADDRESS_SEGMENT_PATTERN}(/{ADDRESS_SEGMENT_PATTERN})*"
ADDRESS_MAX_LENGTH = 200
_ADDRESS = re.compile(ADDRESS_PATTERN)
_ADDRESS_SEGMENT = re.compile(ADDRESS_SEGMENT_PATTERN)


def is_address(text: str) -> bool:
    """Whether the whole of ``text`` is a valid purchase address."""
    return len(text) <= ADDRESS_MAX_LENGTH and _ADDRESS.fullmatch(text) is not None


def is_address_segment(text: str) -> bool:
    """Whether the whole of ``text`` is one address segment (a valid workspace name)."""
    return len(text) <= ADDRESS_MAX_LENGTH and _ADDRESS_SEGMENT.fullmatch(text) is not None


#: The fields that say *what* is bought; changing one is a conflict, never an update.
IDENTITY_FIELDS: tuple[str, ...] = (
    "customerTenantId",
    "productId",
    "skuId",
    "billingCycle",
    "termDuration",
    "type",
)


@dataclass(frozen=True, order=True)
class Identity:
    """What a purchase buys, independent of how many seats."""

    customer_tenant_id: int
    product_id: str
    sku_id: str
    billing_cycle: str
    term_duration: str
    type: str = "subscription"

    def as_dict(self) -> dict[str, Any]:
        """The identity in the declarations' and state file's camelCase names."""
        return {
            "customerTenantId": self.customer_tenant_id,
            "productId": self.product_id,
            "skuId": self.sku_id,
            "billingCycle": self.billing_cycle,
            "termDuration": self.term_duration,
            "type": self.type,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Identity:
        return cls(
            customer_tenant_id=int(data["customerTenantId"]),
            product_id=str(data["productId"]),
            sku_id=str(data["skuId"]),
            billing_cycle=str(data["billingCycle"]),
            term_duration=str(data["termDuration"]),
            type=str(data["type"]),
        )

    def differences(self, other: Identity) -> list[str]:
        """The camelCase names of the identity fields that differ from ``other``."""
        if self == other:
            return []  # the planner asks for every recorded purchase; most are unchanged
        mine, theirs = self.as_dict(), other.as_dict()
        return [name for name in IDENTITY_FIELDS if mine[name] != theirs[name]]

    @property
    def product(self) -> str:
        return f"{self.product_id}:{self.sku_id}"


@dataclass(frozen=True)
class Location:
    """Where a record was declared (1-based line and column)."""

    path: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}"


@dataclass(frozen=True)
class Purchase:
    """One declared purchase: the total seats wanted of one identity."""

    address: str
    identity: Identity
    quantity: int
    product_variant_id: int | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    provisioning_context: Mapping[str, str] = field(default_factory=dict)
    attestation_accepted: bool | None = None
    notification_email: str | None = None
    invoice_profile_id: int | None = None
    location: Location | None = field(default=None, compare=False)
    #: ``allowAdditionalSubscription``: buy even when Cloud-iQ already shows seats of
    #: this identity that no address accounts for (read before buying, ``--refresh``).
    allow_additional_subscription: bool = False

    def canonical(self) -> dict[str, Any]:
        """Every field that affects what apply sends or may buy, in a stable JSON-ready form."""
        data: dict[str, Any] = {
            "address": self.address,
            **self.identity.as_dict(),
            "quantity": self.quantity,
            "productVariantId": self.product_variant_id,
            "tags": dict(sorted(self.tags.items())),
            "provisioningContext": dict(sorted(self.provisioning_context.items())),
            "attestationAccepted": self.attestation_accepted,
            "notificationEmail": self.notification_email,
            "invoiceProfileId": self.invoice_profile_id,
        }
        if self.allow_additional_subscription:
            # Only when set, so declarations without it keep the digest they had.
            data["allowAdditionalSubscription"] = True
        return data


@dataclass(frozen=True)
class Move:
    """A ``moved:`` entry: the purchase recorded at ``source`` now lives at ``target``."""

    source: str
    target: str
    location: Location | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Declarations:
    """Every declared purchase, sorted by address, the files they came from, and the
    ``moved:`` entries, sorted by their ``from``."""

    purchases: tuple[Purchase, ...]
    files: tuple[str, ...] = ()
    moves: tuple[Move, ...] = ()

    def by_address(self) -> dict[str, Purchase]:
        return {p.address: p for p in self.purchases}

    def digest(self) -> str:
        """A hash of what the declarations ask for (not of comments or layout)."""
        canonical: Any = [p.canonical() for p in sorted(self.purchases, key=lambda p: p.address)]
        if self.moves:
            # Only when present, so declarations without moves keep the digest they had.
            moved = [{"from": m.source, "to": m.target} for m in self.moves]
            canonical = {"purchases": canonical, "moved": moved}
        payload = json.dumps(
            canonical,
            sort_keys=True,
            separators=(",", ":"),
        )
        return "sha256:" + hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True)
class CheckoutRecord:
    """One checkout the API answered 204 (or that was resolved as purchased).

    ``evidence`` says how ``reconciler refresh`` learned that a pending checkout
    was made (the order it found, how it matched); None for a 204 or a hand resolve.
    """

    external_order_id: str
    quantity: int
    time: str
    evidence: str | None = None


#: The ``source`` of an adjustment written by ``reconciler refresh``.
REFRESH_SOURCE = "refresh"


@dataclass(frozen=True)
class Adjustment:
    """Seats changed outside the reconciler (in the Cloud-iQ portal), as recorded.

    ``quantity`` is the change (negative for seats cancelled); never a checkout:
    nothing was bought through the reconciler.
    """

    quantity: int
    time: str
    source: str
    evidence: str


@dataclass(frozen=True)
class RecordedPurchase:
    """Seats the state says are held for one address.

    ``quantity`` is what was bought (the checkouts, or the seats imported) plus
    every adjustment; 0 only after adjustments took every seat away.
    """

    address: str
    identity: Identity
    quantity: int
    checkouts: tuple[CheckoutRecord, ...] = ()
    adjustments: tuple[Adjustment, ...] = ()


@dataclass(frozen=True)
class PendingOperation:
    """A checkout that was sent (or about to be) and whose outcome is not known."""

    address: str
    identity: Identity
    external_order_id: str
    quantity: int
    time: str


STATE_VERSION = 1


@dataclass(frozen=True)
class State:
    """The recorded purchases and pending operations, as of ``serial``."""

    lineage: str
    serial: int = 0
    purchases: Mapping[str, RecordedPurchase] = field(default_factory=dict)
    pending: Mapping[str, PendingOperation] = field(default_factory=dict)


class Action(enum.StrEnum):
    """What apply does for one address; ``ACTIONS`` holds everything each one means."""

    PURCHASE = "purchase"
    INCREASE = "increase"
    NOOP = "noop"
    CONFLICT = "conflict"
    ORPHAN = "orphan"
    PENDING = "pending"
    #: The recorded purchase moves to a new address (a state write); with a
    #: positive delta the seats added after the move are bought as an increase.
    MOVE = "move"


class Executor(enum.StrEnum):
    """How apply carries out a change of an action."""

    #: Nothing to do (unchanged, reported only, or refused).
    NONE = "none"
    #: A state write only: nothing is sent to the API.
    STATE = "state"
    #: verify, a durable pending entry, checkout, and the seats recorded on 204.
    CHECKOUT = "checkout"


@dataclass(frozen=True)
class ActionInfo:
    """Everything the layers need to know of one action, in one row.

    ``symbol`` and ``colour`` (an ANSI code) mark it in a text plan; ``phrase`` says
    its count in the ``Plan:`` line (``{n}`` the changes, ``{seats}`` their seats);
    ``always_summarised`` keeps it in that line at 0. ``spends`` is true when apply
    sends an order for it; ``blocks`` when the plan cannot be applied while it is
    there; ``changes`` when apply changes anything for it. ``attention`` orders the
    pull-request comment's rows (lower first).
    """

    symbol: str
    colour: str
    executor: Executor
    phrase: str
    spends: bool = False
    blocks: bool = False
    changes: bool = False
    always_summarised: bool = False
    attention: int = 2


#: The action table: one row per action, in the order the ``Plan:`` line names them.
ACTIONS: Mapping[Action, ActionInfo] = MappingProxyType(
    {
        Action.MOVE: ActionInfo(">", "36", Executor.STATE, "{n} to move", changes=True),
        Action.PURCHASE: ActionInfo(
            "+",
            "32",
            Executor.CHECKOUT,
            "{n} to purchase (+{seats})",
            spends=True,
            changes=True,
            always_summarised=True,
        ),
        Action.INCREASE: ActionInfo(
            "~",
            "33",
            Executor.CHECKOUT,
            "{n} to increase (+{seats})",
            spends=True,
            changes=True,
            always_summarised=True,
        ),
        Action.CONFLICT: ActionInfo(
            "!",
            "31;1",
            Executor.NONE,
            "{n} conflict|{n} conflicts",
            blocks=True,
            always_summarised=True,
            attention=0,
        ),
        Action.PENDING: ActionInfo(
            "?",
            "35",
            Executor.NONE,
            "{n} pending",
            blocks=True,
            always_summarised=True,
            attention=1,
        ),
        Action.ORPHAN: ActionInfo("-", "31", Executor.NONE, "{n} orphan|{n} orphans"),
        Action.NOOP: ActionInfo(" ", "0", Executor.NONE, "{n} unchanged"),
    }
)

#: Actions that send money through the API on apply.
BUYING_ACTIONS = frozenset(a for a, info in ACTIONS.items() if info.spends)
#: Actions that make plan --detailed-exitcode and apply fail.
BLOCKING_ACTIONS = frozenset(a for a, info in ACTIONS.items() if info.blocks)


@dataclass(frozen=True)
class Change:
    """What apply would do for one address.

    ``before`` is the recorded seats (0 when none), ``after`` the declared seats
    (None when the address is no longer declared), ``delta`` the seats to buy.
    """

    address: str
    action: Action
    before: int
    after: int | None
    delta: int
    identity: Identity
    purchase: Purchase | None = None
    reason: str | None = None
    #: For a move: the address the recorded purchase moves from.
    moved_from: str | None = None

    @property
    def spends(self) -> bool:
        """Whether apply sends an order for this change (a move that adds seats does)."""
        return ACTIONS[self.action].spends or (self.action is Action.MOVE and self.delta > 0)


@dataclass(frozen=True)
class Summary:
    """How many changes of each action a plan has, and the seats they move."""

    counts: Mapping[Action, int] = field(default_factory=dict)
    #: Seats per action: bought for the buying actions, recorded for the others.
    action_seats: Mapping[Action, int] = field(default_factory=dict)

    def count(self, action: Action) -> int:
        return self.counts.get(action, 0)

    def seats_of(self, action: Action) -> int:
        return self.action_seats.get(action, 0)

    @property
    def seats(self) -> int:
        """Seats the plan buys."""
        return sum(self.seats_of(a) for a in BUYING_ACTIONS)

    @property
    def has_purchases(self) -> bool:
        return any(self.count(a) for a in BUYING_ACTIONS)

    @property
    def has_changes(self) -> bool:
        """Whether apply would change anything: buy, or write the state."""
        return any(self.count(a) for a, info in ACTIONS.items() if info.changes)

    @property
    def blocked(self) -> bool:
        return any(self.count(a) for a in BLOCKING_ACTIONS)


def targeted(address: str, targets: Sequence[str]) -> bool:
    """Whether ``--target`` values select ``address`` (``acme/`` selects ``acme/...``)."""
    return any(address.startswith(t) if t.endswith("/") else address == t for t in targets)


def is_target(text: str) -> bool:
    """Whether ``text`` is a valid ``--target``: an address, or one and a trailing '/'."""
    return is_address(text[:-1] if text.endswith("/") else text)


@dataclass(frozen=True)
class Plan:
    """Every change, sorted by address, and what the plan was made against."""

    changes: tuple[Change, ...]
    lineage: str
    serial: int
    #: The declarations planned, hashed only when ``declarations_digest`` is first read
    #: (a text plan never reads it); or the digest itself, for a plan read back.
    digest_source: Declarations | str = field(compare=False, repr=False)
    #: ``--target`` addresses (``prefix/`` for a subtree); empty for a whole plan.
    targets: tuple[str, ...] = ()
    #: With targets: how many addresses the whole plan has (``changes`` has the targeted).
    addresses: int = 0

    @functools.cached_property
    def declarations_digest(self) -> str:
        """The digest of the declarations planned (``Declarations.digest``)."""
        source = self.digest_source
        return source if isinstance(source, str) else source.digest()

    @functools.cached_property
    def summary(self) -> Summary:
        counts: dict[Action, int] = {}
        seats: dict[Action, int] = {}
        for change in self.changes:
            counts[change.action] = counts.get(change.action, 0) + 1
            if change.action is Action.MOVE:
                # A move that adds seats is a move and an increase.
                if change.delta > 0:
                    counts[Action.INCREASE] = counts.get(Action.INCREASE, 0) + 1
                    seats[Action.INCREASE] = seats.get(Action.INCREASE, 0) + change.delta
            else:
                seats[change.action] = seats.get(change.action, 0) + change.delta
        return Summary(counts, seats)

    def buying(self) -> tuple[Change, ...]:
        """The changes apply buys seats for: purchases, increases, moves that add seats."""
        return tuple(c for c in self.changes if c.spends)

    def moving(self) -> tuple[Change, ...]:
        """The moves apply makes, as state writes, before it buys anything."""
        return tuple(c for c in self.changes if c.action is Action.MOVE)


# --- what apply did ----------------------------------------------------------


class Outcome(enum.StrEnum):
    PURCHASED = "purchased"
    FAILED = "failed"
    PENDING = "pending"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class ChangeResult:
    address: str
    seats: int
    outcome: Outcome
    seconds: float = 0.0
    external_order_id: str | None = None
    errors: tuple[str, ...] = ()


@dataclass(frozen=True)
class Event:
    """Progress: ``started`` when a change begins, ``finished`` with its result,
    ``moved`` when a move has been written."""

    kind: str
    change: Change
    result: ChangeResult | None = None


@dataclass(frozen=True)
class ApplyResult:
    results: tuple[ChangeResult, ...]
    interrupted: bool = False

    def count(self, outcome: Outcome) -> int:
        return sum(1 for r in self.results if r.outcome is outcome)

    @property
    def seats_bought(self) -> int:
        return sum(r.seats for r in self.results if r.outcome is Outcome.PURCHASED)

    @property
    def ok(self) -> bool:
        return not self.interrupted and all(r.outcome is Outcome.PURCHASED for r in self.results)
