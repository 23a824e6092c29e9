"""The exceptions the reconciler raises on purpose.

Every expected failure is a ``ReconcilerError``; the CLI's single error boundary
prints its message as ``error: ...`` and exits 1. Anything else is a bug and
keeps its traceback. This module must not import anything but the standard
library at run time. Refusals a user should read with context (the state options
to repeat, the commands that help) carry data, and ``render.problems`` words them.

    ReconcilerError
    ├── ConfigError            declarations are invalid (carries every problem)
    ├── StateError             the state file is corrupt, newer, or unusable
    │   └── StateLockedError   another process holds the state lock
    ├── PlanError              a plan cannot be applied (stale, conflicts, pending, limits)
    │   ├── PendingError       checkouts with an unknown outcome stand in the way
    │   ├── PreflightError     conflicts, --max-seats, --max-cost, the per-purchase seat limit
    │   ├── StalePlanError     a saved plan the state or declarations moved past
    │   └── UnreviewedPlanError the plan made now is not the plan that was reviewed
    ├── RepairRefused          a hand repair of the state its rules refuse
    ├── NoHistoryError         a state file keeps no history of writes
    └── ApiError               the Crayon API or the way to it failed
        ├── AuthenticationError the API refused the credentials (token request)
        └── ConfigurationError credentials or endpoint missing or refused
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: this module imports nothing at run time
    from reconciler.model import PendingOperation


class ReconcilerError(Exception):
    """An expected failure with a message meant for the user."""


@dataclass(frozen=True)
class ConfigProblem:
    """One problem in one declarations file, at a place in it."""

    path: str
    line: int
    column: int
    json_path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}:{self.column}"
        if self.json_path:
            return f"{where}: {self.json_path}: {self.message}"
        return f"{where}: {self.message}"


class ConfigError(ReconcilerError):
    """The declarations are invalid; ``problems`` holds all of them, sorted."""

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems = tuple(problems)
        count = len(self.problems)
        noun = "error" if count == 1 else "errors"
        super().__init__(
            "\n".join(str(p) for p in self.problems) + f"\n{count} {noun} in declarations"
        )


class StateError(ReconcilerError):
    """The state cannot be read or written as it is."""


class StateLockedError(StateError):
    """Another live process holds the state lock."""


class PlanError(ReconcilerError):
    """A plan may not be carried out."""


class FailureKind(enum.StrEnum):
    """How a failed API call may be handled.

    RETRYABLE: the request certainly had no effect, or the endpoint is safe to repeat.
    DEFINITIVE: the server refused the request; repeating it gives the same answer.
    AMBIGUOUS: the server may have acted on the request; the outcome is unknown.
    """

    RETRYABLE = "retryable"
    DEFINITIVE = "definitive"
    AMBIGUOUS = "ambiguous"


@dataclass(frozen=True)
class ApiObjectError:
    """One entry of the API's ``ObjectErrors``."""

    code: str
    message: str


class ApiError(ReconcilerError):
    """A call to the Crayon API failed.

    Never holds a secret: the URL carries no credentials and bodies are the API's
    own error text. ``refused`` is true only when the API definitively refused
    this order or change (400, 403, 404, 409 or 422 on verify, checkout or a
    subscription update, never on the token endpoint); the client sets it, so
    nothing outside ``api`` classifies a status again.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: FailureKind,
        method: str = "",
        url: str = "",
        status: int | None = None,
        error_code: str | None = None,
        api_message: str | None = None,
        object_errors: Sequence[ApiObjectError] = (),
        retry_after: float | None = None,
        refused: bool = False,
    ) -> None:
        self.kind = kind
        self.method = method
        self.url = url
        self.status = status
        self.error_code = error_code
        self.api_message = api_message
        self.object_errors = tuple(object_errors)
        self.retry_after = retry_after
        self.refused = refused
        super().__init__(message)

    def describe(self) -> str:
        """The full text shown to the user: request, status and the API's own errors."""
        parts = [str(self)]
        if self.method and self.url:
            status = f" -> {self.status}" if self.status is not None else ""
            parts.append(f"  {self.method} {self.url}{status}")
        if self.error_code or self.api_message:
            parts.append(f"  {self.error_code or ''}: {self.api_message or ''}".rstrip(": "))
        parts.extend(f"  - {e.code}: {e.message}" for e in self.object_errors)
        return "\n".join(parts)


class ConfigurationError(ApiError):
    """The environment does not say how to reach the API (missing or unsafe settings)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, kind=FailureKind.DEFINITIVE)


class AuthenticationError(ApiError):
    """The token request was refused: no call can succeed until the credentials are fixed."""


# --- refusals of a plan, as data: the CLI words them (render.problems) --------------


class PendingError(PlanError):
    """Checkouts whose outcome is unknown stand in the way (``entries``, by address)."""

    def __init__(self, entries: Sequence[PendingOperation]) -> None:
        self.entries = tuple(sorted(entries, key=lambda e: e.address))
        addresses = ", ".join(e.address for e in self.entries)
        super().__init__(f"pending checkouts with an unknown outcome: {addresses}")


class PreflightKind(enum.StrEnum):
    """Why apply refused a plan before any API call."""

    MAX_SEATS = "max-seats"
    SEAT_LIMIT = "seat-limit"
    #: The purchases cost more than ``--max-cost``.
    MAX_COST = "max-cost"
    #: ``--max-cost`` was given and a purchase's price is unknown.
    COST_UNKNOWN = "cost-unknown"
    #: ``--max-cost`` was given and the prices are in more than one currency.
    CURRENCIES = "currencies"


class PreflightError(PlanError):
    """A plan apply refuses before calling the API: ``kind`` says why.

    ``count`` is the number of conflicts; ``seats`` the seats the plan buys;
    ``limit`` the limit it is over; ``oversized`` the changes above the
    per-purchase limit, as (address, seats). For ``--max-cost``: ``max_cost``, the
    ``cost`` found in ``currencies`` (the one currency, or every one found), and the
    addresses whose price is ``unknown``.
    """

    def __init__(
        self,
        kind: PreflightKind,
        *,
        count: int = 0,
        seats: int = 0,
        limit: int = 0,
        oversized: Sequence[tuple[str, int]] = (),
        max_cost: Decimal | None = None,
        cost: Decimal | None = None,
        currencies: Sequence[str] = (),
        unknown: Sequence[str] = (),
    ) -> None:
        self.kind = kind
        self.count = count
        self.seats = seats
        self.limit = limit
        self.oversized = tuple(oversized)
        self.max_cost = max_cost
        self.cost = cost
        self.currencies = tuple(currencies)
        self.unknown = tuple(unknown)
        super().__init__(f"apply refused the plan ({kind.value}); nothing was bought")


@dataclass(frozen=True)
class Staleness:
    """How a saved plan differs from the plan made now (each None or False: no difference)."""

    lineage: tuple[str, str] | None = None
    serial: tuple[int, int] | None = None
    declarations: bool = False
    #: The state and declarations are the same, yet the changes are not.
    changes: bool = False
    #: The saved plan's targets, when other ``--target`` values were given with it.
    targets: tuple[str, ...] | None = None


class StalePlanError(PlanError):
    """A saved plan that no longer applies, and why."""

    def __init__(self, path: str, staleness: Staleness) -> None:
        self.path = path
        self.staleness = staleness
        super().__init__(f"saved plan {path} no longer applies")


class RepairRefused(ReconcilerError):
    """A hand repair of the state that its rules refuse.

    ``reason`` is one of: ``not-recorded``, ``already-recorded``, ``pending``,
    ``not-declared``, ``no-pending``. ``where`` names the state or declarations.
    """

    def __init__(self, reason: str, address: str, where: str) -> None:
        self.reason = reason
        self.address = address
        self.where = where
        super().__init__(f"{address}: {reason} ({where})")


class NoHistoryError(ReconcilerError):
    """The store keeps no history of its writes (a state file)."""

    def __init__(self, location: str) -> None:
        self.location = location
        super().__init__(f"{location} keeps no history of writes")


@dataclass(frozen=True)
class PlannedChange:
    """One change as a reviewer saw it: the action, the seats it starts from, the
    seats it adds (or, negative, takes away) and the seats it ends with."""

    action: str
    before: int
    delta: int
    after: int | None


@dataclass(frozen=True)
class ChangeDifference:
    """An address whose change differs between the reviewed plan and the plan made
    now; ``reviewed`` or ``now`` is None where that plan has no change for it."""

    address: str
    reviewed: PlannedChange | None
    now: PlannedChange | None


class UnreviewedPlanError(PlanError):
    """``plan --expect``: the plan made now differs from the reviewed plan at ``path``.

    ``differences`` are by address; ``targets`` is (reviewed, now) when the two plans
    were made for other ``--target`` values.
    """

    def __init__(
        self,
        path: str,
        differences: Sequence[ChangeDifference],
        targets: tuple[tuple[str, ...], tuple[str, ...]] | None = None,
    ) -> None:
        self.path = path
        self.differences = tuple(differences)
        self.targets = targets
        super().__init__(f"the plan differs from the reviewed plan {path}")
