"""What the use cases return: plain records the views turn into words.

``commands`` builds these and ``render``/``views`` read them, so neither needs
the other: a use case returns data and raises structured errors, and only the
renderers say anything. Data and small derived properties only: no I/O, no
wording, no decisions a use case should make.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from reconciler.model import Action, ApplyResult, Change, Identity, PendingOperation, Plan, State

if TYPE_CHECKING:  # annotations only: a plain plan loads nothing of observe
    from reconciler.observe import Drift, Evidence, Link, Observations, ProductInfo


class Issue(Protocol):
    """A verify error as the views show it (``api.orders.LineError`` fits)."""

    @property
    def code(self) -> str: ...
    @property
    def description(self) -> str: ...


#: What verify said, per address (an empty list: accepted).
VerifyErrors = Mapping[str, Sequence[Issue]]


@dataclass(frozen=True)
class PlanRun:
    """A plan, the state it was made against, and what verify said (when asked)."""

    plan: Plan
    state: State
    verify_errors: VerifyErrors | None = None
    orphans: tuple[str, ...] = field(default=())
    #: What Cloud-iQ showed against the state, when it was read.
    observations: Observations | None = None
    #: Changes above the per-purchase seat limit, as (address, seats).
    oversized: tuple[tuple[str, int], ...] = ()
    #: The per-purchase seat limit the plan was held against.
    seat_limit: int = 0
    #: Why Cloud-iQ was not read (no credentials, ``--refresh=false``); None when it was.
    offline: str | None = None

    @property
    def refused_by_verify(self) -> list[str]:
        """The addresses whose order verify refused, sorted."""
        return sorted(a for a, errors in (self.verify_errors or {}).items() if errors)

    def exit_code(self, *, detailed: bool) -> int:
        """1 when apply would refuse (conflicts, pending, verify errors); with
        ``detailed``, 2 when there is something to buy or move; else 0."""
        summary = self.plan.summary
        if summary.blocked or self.refused_by_verify:
            return 1
        return 2 if detailed and summary.has_changes else 0


@dataclass(frozen=True)
class ApplyRun:
    """What an apply did: its plan, the moves it made and, when it bought, the
    executor's result."""

    plan: Plan
    result: ApplyResult | None = None
    cancelled: bool = False
    #: The state writes made for moves, adoptions and forgotten addresses.
    moved: tuple[Change, ...] = ()
    #: What apply recorded from Cloud-iQ before planning (None: nothing, or offline).
    refreshed: RefreshRun | None = None
    #: Changes not made because their customer tenant has a conflict in the plan.
    held_back: tuple[Change, ...] = ()
    #: What Cloud-iQ showed of each pending operation left, by address (None: not read).
    findings: Mapping[str, str] | None = None
    #: Names and unit prices of what the run changed, by identity (None: not read).
    prices: Mapping[Identity, ProductInfo] | None = None

    @property
    def pending(self) -> tuple[Change, ...]:
        """Changes left waiting for an operation whose outcome the API cannot tell."""
        return tuple(c for c in self.plan.changes if c.action is Action.PENDING)

    @property
    def conflicts(self) -> tuple[Change, ...]:
        return tuple(c for c in self.plan.changes if c.action is Action.CONFLICT)

    @property
    def ok(self) -> bool:
        return (
            not self.cancelled
            and not self.pending
            and not self.conflicts
            and (self.result is None or self.result.ok)
        )


@dataclass(frozen=True)
class RefreshRun:
    """What a refresh found and wrote.

    ``settled`` were recorded as purchased, ``dropped`` as not purchased,
    ``adjusted`` as adjustments; ``left`` are the pending entries still waiting
    for a person, each with the evidence found.
    """

    observations: Observations
    settled: tuple[Evidence, ...] = ()
    dropped: tuple[Evidence, ...] = ()
    adjusted: tuple[Drift, ...] = ()
    cancelled: bool = False
    #: Subscriptions recorded at the addresses that own them.
    links: tuple[Link, ...] = ()

    @property
    def left(self) -> tuple[Evidence, ...]:
        if self.cancelled:
            return tuple(e for _, e in sorted(self.observations.evidence.items()))
        return self.observations.unsettled

    @property
    def writes(self) -> int:
        return len(self.settled) + len(self.dropped) + len(self.adjusted) + len(self.links)

    def exit_code(self) -> int:
        """0 when nothing is left pending; 1 when something is, when the API refused to
        list a customer tenant (nothing of it was read), or the run was cancelled."""
        return 1 if self.cancelled or self.left or self.observations.refused else 0


@dataclass(frozen=True)
class Adoption:
    """Seats of one identity to record at ``address``.

    ``declared`` is True when the address was already declared (only the state
    is written for it), False for a purchase the new declarations file adds.
    """

    address: str
    identity: Identity
    quantity: int
    subscriptions: tuple[int, ...]
    product_name: str
    declared: bool = False


@dataclass(frozen=True)
class Skipped:
    """Active subscriptions import leaves alone, and why."""

    identity: Identity
    subscriptions: tuple[int, ...]
    reason: str


@dataclass(frozen=True)
class ImportPlan:
    """What ``import --tenant`` adopts and what it leaves alone."""

    tenant: int
    adoptions: tuple[Adoption, ...]
    skipped: tuple[Skipped, ...]

    @property
    def new(self) -> tuple[Adoption, ...]:
        return tuple(a for a in self.adoptions if not a.declared)


@dataclass(frozen=True)
class ImportRun:
    """What ``import`` did: its plan, the declarations it wrote and where."""

    plan: ImportPlan
    text: str | None = None
    out: str | None = None
    cancelled: bool = False

    @property
    def recorded(self) -> int:
        return 0 if self.cancelled else len(self.plan.adoptions)


@dataclass(frozen=True)
class Resolution:
    """A settled pending checkout, and the seats recorded at its address afterwards."""

    pending: PendingOperation
    purchased: bool
    total: int


class RepairKind(enum.StrEnum):
    """A change to the state made by hand (``reconciler state ...``)."""

    MOVE = "move"
    REMOVE = "remove"
    IMPORT = "import"


@dataclass(frozen=True)
class Repair:
    """A repair about to be made, for the user to confirm."""

    kind: RepairKind
    address: str
    seats: int
    #: For a move: where the purchase goes.
    target: str | None = None


def orphans_of(plan: Plan) -> tuple[str, ...]:
    """The addresses recorded but no longer declared."""
    return tuple(c.address for c in plan.changes if c.action is Action.ORPHAN)
