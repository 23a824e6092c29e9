"""Declarations: what the YAML asks for, as records (addresses, identities, purchases,
``moved:`` entries).

Data and pure helpers only; no I/O.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
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
    #: this identity that no address accounts for (read before buying).
    allow_additional_subscription: bool = False
    #: ``seatChanges``: how more seats are added to an address that has some:
    #: ``order`` (a checkout of the difference: a new subscription) or ``update``
    #: (the newest active subscription raised to the new quantity: co-terminous).
    seat_changes: str = "order"
    #: ``autoRenew``: whether the address's subscriptions renew at the end of their
    #: term; None leaves it as Cloud-iQ has it.
    auto_renew: bool | None = None

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
        # Each only when set, so declarations without it keep the digest they had.
        if self.allow_additional_subscription:
            data["allowAdditionalSubscription"] = True
        if self.seat_changes != "order":
            data["seatChanges"] = self.seat_changes
        if self.auto_renew is not None:
            data["autoRenew"] = self.auto_renew
        return data


@dataclass(frozen=True)
class Move:
    """A ``moved:`` entry: the purchase recorded at ``source`` now lives at ``target``."""

    source: str
    target: str
    location: Location | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Adopt:
    """An ``import:`` entry: existing Cloud-iQ subscriptions the address ``target`` takes
    over (recorded as its seats; nothing bought)."""

    target: str
    subscriptions: tuple[int, ...]
    location: Location | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Removal:
    """A ``removed:`` entry: an address no longer declared, and whether its
    subscriptions are cancelled (``cancel: true``) or only forgotten."""

    address: str
    cancel: bool
    location: Location | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Declarations:
    """Every declared purchase, sorted by address, the files they came from, and the
    ``moved:``, ``import:`` and ``removed:`` entries, sorted by their address."""

    purchases: tuple[Purchase, ...]
    files: tuple[str, ...] = ()
    moves: tuple[Move, ...] = ()
    adoptions: tuple[Adopt, ...] = ()
    removals: tuple[Removal, ...] = ()

    def by_address(self) -> dict[str, Purchase]:
        return {p.address: p for p in self.purchases}

    def digest(self) -> str:
        """A hash of what the declarations ask for (not of comments or layout)."""
        canonical: Any = [p.canonical() for p in sorted(self.purchases, key=lambda p: p.address)]
        # Each only when present, so declarations without them keep the digest they had.
        if self.moves or self.adoptions or self.removals:
            canonical = {"purchases": canonical}
        if self.moves:
            canonical["moved"] = [{"from": m.source, "to": m.target} for m in self.moves]
        if self.adoptions:
            canonical["import"] = [
                {"to": a.target, "subscriptions": list(a.subscriptions)} for a in self.adoptions
            ]
        if self.removals:
            canonical["removed"] = [
                {"address": r.address, "cancel": r.cancel} for r in self.removals
            ]
        payload = json.dumps(
            canonical,
            sort_keys=True,
            separators=(",", ":"),
        )
        return "sha256:" + hashlib.sha256(payload.encode()).hexdigest()
