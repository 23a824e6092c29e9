"""Product names and prices of a plan, from a catalogue the caller looked up.

The catalogue maps an ``Identity`` to an entry with a name, a unit price and
its currency, any of which may be unknown. A unit price is what one seat costs
for one month of a recurring subscription (agreement products' ``salesPrice``
for new-commerce licences), or once for a one-time purchase (billing cycle
``one-time`` or ``none``). An unknown price is shown as unknown and is never
counted as 0.

Pure arithmetic on ``Decimal``: never a float, no I/O, no lookups of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Protocol

from reconciler.model import ACTIONS, Change, Identity, Plan
from reconciler.render.words import count

#: Terms that commit to paying for every month of them, in months.
COMMITMENT_MONTHS: Mapping[str, int] = {"P1Y": 12, "P3Y": 36}
#: Purchase types Microsoft does not take back once its cancellation window has passed.
COMMITMENT_TYPES = frozenset({"software", "reservation"})
#: Billing cycles paid once rather than per month.
ONE_TIME_CYCLES = frozenset({"one-time", "none"})
_CENT = Decimal("0.01")


class CatalogueEntry(Protocol):
    """What the renderers need to know of one product for one customer tenant."""

    @property
    def name(self) -> str | None: ...
    @property
    def unit_price(self) -> Decimal | None: ...
    @property
    def currency(self) -> str | None: ...


Catalogue = Mapping[Identity, CatalogueEntry]


def is_commitment(identity: Identity) -> bool:
    """Whether a purchase cannot be cancelled after Microsoft's cancellation window:
    a P1Y or P3Y term, software, or a reservation."""
    return identity.term_duration in COMMITMENT_MONTHS or identity.type in COMMITMENT_TYPES


@dataclass(frozen=True, order=True)
class Money:
    currency: str
    amount: Decimal

    def __str__(self) -> str:
        """``EUR 1,250.00``: rounded to cents, half up, with thousands separators."""
        rounded = self.amount.quantize(_CENT, rounding=ROUND_HALF_UP)
        return f"{self.currency} {rounded:,.2f}".strip()

    def unit(self) -> str:
        """A unit price as given (``EUR 0.0035`` stays exact), at least to cents."""
        if self.amount == self.amount.quantize(_CENT):
            return str(self)
        return f"{self.currency} {self.amount.normalize():,f}".strip()


def name_of(identity: Identity, catalogue: Catalogue | None) -> str | None:
    entry = catalogue.get(identity) if catalogue is not None else None
    return entry.name if entry is not None and entry.name else None


def unit_price(identity: Identity, catalogue: Catalogue | None) -> Money | None:
    """The unit price, or None when there is no catalogue, no entry or no price."""
    entry = catalogue.get(identity) if catalogue is not None else None
    if entry is None or entry.unit_price is None:
        return None
    return Money((entry.currency or "").upper(), entry.unit_price)


@dataclass(frozen=True)
class ChangeCost:
    """What the seats one change buys cost: per month (over ``months`` when
    committed) or once."""

    unit: Money
    seats: int
    one_time: bool
    #: Months the term commits to (12, 36), 0 for a month-to-month term.
    months: int

    @property
    def total(self) -> Money:
        """Per month for a recurring purchase, once for a one-time one."""
        return Money(self.unit.currency, self.unit.amount * self.seats)

    @property
    def committed(self) -> Money | None:
        """The whole term's cost of a committed recurring purchase, else None."""
        if self.one_time or not self.months or self.seats <= 0:
            return None
        return Money(self.unit.currency, self.unit.amount * self.seats * self.months)

    def describe(self) -> str:
        """``EUR 157.20 per month``, ``... per month, EUR 1,886.40 for 12 months``,
        ``EUR 99.00 once``; fewer seats: ``-EUR 28.00 per month (prorated credit)``."""
        if self.seats < 0:
            saved = Money(self.unit.currency, -self.total.amount)
            return f"-{saved} per month (prorated credit)"
        if self.one_time:
            return f"{self.total} once"
        committed = self.committed
        text = f"{self.total} per month"
        return f"{text}, {committed} for {self.months} months" if committed else text


def change_cost(change: Change, catalogue: Catalogue | None) -> ChangeCost | None:
    """The cost of the seats ``change`` buys, or None when its price is unknown."""
    unit = unit_price(change.identity, catalogue)
    if unit is None:
        return None
    identity = change.identity
    return ChangeCost(
        unit=unit,
        seats=change.delta,
        one_time=identity.billing_cycle in ONE_TIME_CYCLES,
        months=COMMITMENT_MONTHS.get(identity.term_duration, 0),
    )


@dataclass(frozen=True)
class PlanCost:
    """What a plan's seat changes cost, per currency: purchases and increases add,
    decreases and cancellations take away (a prorated credit)."""

    seats: int
    per_month: tuple[Money, ...] = ()
    once: tuple[Money, ...] = ()
    #: (months, money) per commitment length and currency.
    committed: tuple[tuple[int, Money], ...] = ()
    #: Buying changes whose price is unknown, by address.
    unknown: tuple[str, ...] = ()
    #: Changes of seats in all.
    changes: int = 0
    #: Seats decreases and cancellations take away.
    removed: int = 0

    @property
    def known(self) -> bool:
        return self.changes > len(self.unknown)


def _sums(items: Iterable[Money]) -> tuple[Money, ...]:
    totals: dict[str, Decimal] = {}
    for money in items:
        totals[money.currency] = totals.get(money.currency, Decimal(0)) + money.amount
    return tuple(Money(currency, amount) for currency, amount in sorted(totals.items()))


def seat_changes(plan: Plan) -> tuple[Change, ...]:
    """The changes that add or take away seats (moves and adoptions that add some too)."""
    return tuple(c for c in plan.changes if c.delta and (c.spends or ACTIONS[c.action].removes))


def plan_cost(plan: Plan, catalogue: Catalogue | None) -> PlanCost:
    changing = seat_changes(plan)
    costs = [(change, change_cost(change, catalogue)) for change in changing]
    known = [cost for _, cost in costs if cost is not None]
    committed: dict[int, list[Money]] = {}
    for cost in known:
        whole = cost.committed
        if whole is not None:
            committed.setdefault(cost.months, []).append(whole)
    return PlanCost(
        seats=sum(change.delta for change in changing if change.delta > 0),
        per_month=_sums(c.total for c in known if not c.one_time),
        once=_sums(c.total for c in known if c.one_time and c.seats > 0),
        committed=tuple(
            (months, money) for months in sorted(committed) for money in _sums(committed[months])
        ),
        unknown=tuple(change.address for change, cost in costs if cost is None),
        changes=len(changing),
        removed=-sum(change.delta for change in changing if change.delta < 0),
    )


def _joined(amounts: tuple[Money, ...]) -> str:
    return " + ".join(str(m) for m in amounts)


def money_line(cost: PlanCost) -> str | None:
    """``+32 seats, about EUR 412.80 per month, EUR 1,250.00 committed for 12 months``;
    None when no price of anything the plan buys is known."""
    if not cost.known:
        return None
    parts = []
    if cost.seats or not cost.removed:
        parts.append(f"+{count(cost.seats, 'seat')}")
    if cost.removed:
        parts.append(f"-{count(cost.removed, 'seat')}")
    if cost.per_month:
        net = " + ".join(
            str(m) if m.amount >= 0 else f"-{Money(m.currency, -m.amount)}" for m in cost.per_month
        )
        parts.append(f"about {net} per month")
    by_months: dict[int, list[Money]] = {}
    for months, money in cost.committed:
        by_months.setdefault(months, []).append(money)
    for months, moneys in by_months.items():
        parts.append(f"{_joined(tuple(moneys))} committed for {months} months")
    if cost.once:
        parts.append(f"{_joined(cost.once)} once")
    if cost.unknown:
        parts.append(f"price unknown for {len(cost.unknown)} of {count(cost.changes, 'change')}")
    return ", ".join(parts)


def commitment_warning(plan: Plan) -> str | None:
    """``1 change buys a commitment (...)``: the buying changes a customer cannot take
    back once Microsoft's cancellation window has passed; None when there are none."""
    committed = sum(1 for c in plan.buying() if is_commitment(c.identity))
    if not committed:
        return None
    what = (
        "1 change buys a commitment" if committed == 1 else (f"{committed} changes buy commitments")
    )
    pronoun = "it" if committed == 1 else "they"
    return (
        f"{what} (a P1Y or P3Y term, software or a reservation): {pronoun} cannot be "
        "cancelled or reduced once Microsoft's cancellation window (7 days for "
        "new-commerce subscriptions) has passed"
    )


def price_line(change: Change, catalogue: Catalogue) -> str | None:
    """``EUR 5.60 a seat per month: +EUR 112.00 per month`` under a change that adds or
    takes away seats; ``price unknown`` when the catalogue has no price for it."""
    if not change.delta:
        return None
    cost = change_cost(change, catalogue)
    if cost is None:
        text = "price unknown"
    else:
        per = "once" if cost.one_time else "per month"
        sign = "+" if change.delta > 0 else ""
        text = f"{cost.unit.unit()} a seat {per}: {sign}{cost.describe()}"
    if change.spends and is_commitment(change.identity):
        text += " (a commitment)"
    return text
