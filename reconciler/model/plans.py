"""Plans: the action table, one change per address, and the summary.

Data and pure helpers only; no I/O.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from reconciler.model.declarations import Declarations, Identity, Purchase, is_address
from reconciler.model.records import SubscriptionChange


class Action(enum.StrEnum):
    """What apply does for one address; ``ACTIONS`` holds everything each one means."""

    PURCHASE = "purchase"
    INCREASE = "increase"
    #: Fewer seats: the address's newest subscriptions lowered (or cancelled) by PUT,
    #: only seats inside Microsoft's cancellation window.
    DECREASE = "decrease"
    #: A ``removed: {cancel: true}`` address: its subscriptions cancelled by PUT.
    CANCEL = "cancel"
    #: A setting of the address's subscriptions (``autoRenew``) changed by PUT.
    UPDATE = "update"
    #: ``import:``: existing subscriptions recorded at the address (a state write).
    ADOPT = "adopt"
    #: ``removed: {cancel: false}``: the address is forgotten (a state write).
    FORGET = "forget"
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
    #: Per subscription: a durable pending entry, GET and compare, PUT, the result
    #: recorded (read back after a lost answer).
    UPDATE = "update"


@dataclass(frozen=True)
class ActionInfo:
    """Everything the layers need to know of one action, in one row.

    ``symbol`` and ``colour`` (an ANSI code) mark it in a text plan; ``phrase`` says
    its count in the ``Plan:`` line (``{n}`` the changes, ``{seats}`` their seats;
    ``singular|plural``); ``always_summarised`` keeps it in that line at 0 and an
    empty phrase keeps it out. ``spends`` is true when apply adds seats that cost
    money; ``blocks`` when the plan cannot be applied while it is there;
    ``changes`` when apply changes anything for it; ``removes`` when its seats are
    taken back (a credit, not a cost). ``attention`` orders the pull-request
    comment's rows (lower first).
    """

    symbol: str
    colour: str
    executor: Executor
    phrase: str
    spends: bool = False
    blocks: bool = False
    changes: bool = False
    removes: bool = False
    always_summarised: bool = False
    attention: int = 2


#: The action table: one row per action, in the order the ``Plan:`` line names them.
ACTIONS: Mapping[Action, ActionInfo] = MappingProxyType(
    {
        Action.MOVE: ActionInfo(">", "36", Executor.STATE, "{n} to move", changes=True),
        Action.ADOPT: ActionInfo("<", "32", Executor.STATE, "{n} to adopt", changes=True),
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
        Action.DECREASE: ActionInfo(
            "v", "33", Executor.UPDATE, "{n} to decrease (-{seats})", changes=True, removes=True
        ),
        Action.CANCEL: ActionInfo(
            "x", "31", Executor.UPDATE, "{n} to cancel (-{seats})", changes=True, removes=True
        ),
        Action.UPDATE: ActionInfo("*", "34", Executor.UPDATE, "{n} to update", changes=True),
        Action.FORGET: ActionInfo("/", "90", Executor.STATE, "{n} to forget", changes=True),
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
        Action.NOOP: ActionInfo(" ", "0", Executor.NONE, ""),
    }
)

#: Actions that send money through the API on apply.
BUYING_ACTIONS = frozenset(a for a, info in ACTIONS.items() if info.spends)
#: Actions that make plan --detailed-exitcode and apply fail.
BLOCKING_ACTIONS = frozenset(a for a, info in ACTIONS.items() if info.blocks)


@dataclass(frozen=True, init=False)
class Change:
    """What apply would do for one address.

    ``before`` is the recorded seats (0 when none), ``after`` the declared seats
    (None when the address is no longer declared), ``delta`` the seats to buy.

    The planner makes one per address: ``__init__`` is written out because a frozen
    dataclass's sets each of these fields through ``object.__setattr__``, twice as
    slow (a test holds its parameters to the fields).
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
    #: The Cloud-iQ subscriptions the address owns (or, to adopt, takes over).
    subscriptions: tuple[int, ...] = ()
    #: The PUTs apply makes, in order (decrease, cancel, update, increase by update).
    steps: tuple[SubscriptionChange, ...] = ()
    #: When the cancellation window of the seats a reduction takes closes (UTC,
    #: ISO-8601); for a conflict over seats outside it, when they can go (renewal).
    window_ends: str | None = None
    #: Something a reviewer must see besides the action (e.g. seats added outside
    #: this repository, seats that were cancelled in Cloud-iQ and are bought again).
    note: str | None = None
    #: Whether ``before`` is the seats Cloud-iQ showed (False: the seats recorded).
    cloud: bool = False

    def __init__(
        self,
        address: str,
        action: Action,
        before: int,
        after: int | None,
        delta: int,
        identity: Identity,
        purchase: Purchase | None = None,
        reason: str | None = None,
        moved_from: str | None = None,
        subscriptions: tuple[int, ...] = (),
        steps: tuple[SubscriptionChange, ...] = (),
        window_ends: str | None = None,
        note: str | None = None,
        cloud: bool = False,
    ) -> None:
        self.__dict__.update(
            address=address,
            action=action,
            before=before,
            after=after,
            delta=delta,
            identity=identity,
            purchase=purchase,
            reason=reason,
            moved_from=moved_from,
            subscriptions=subscriptions,
            steps=steps,
            window_ends=window_ends,
            note=note,
            cloud=cloud,
        )

    @property
    def spends(self) -> bool:
        """Whether apply adds seats that cost money (a move that adds seats does)."""
        return ACTIONS[self.action].spends or (self.action is Action.MOVE and self.delta > 0)

    @property
    def executor(self) -> Executor:
        """How apply carries this change out: an increase by update PUTs, a move that
        adds seats buys them by checkout, the rest as the action table says."""
        if self.steps:
            return Executor.UPDATE
        if self.spends:
            return Executor.CHECKOUT
        return ACTIONS[self.action].executor


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
        """Seats the plan adds (bought by checkout or raised by update)."""
        return sum(self.seats_of(a) for a in BUYING_ACTIONS)

    @property
    def removed_seats(self) -> int:
        """Seats the plan takes away (decreases and cancellations), as a positive number."""
        return -sum(min(0, self.seats_of(a)) for a in ACTIONS)

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
    #: The customer tenants whose subscriptions Cloud-iQ showed for the plan; None when
    #: it was not read (an offline plan).
    read_tenants: tuple[int, ...] | None = None

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
