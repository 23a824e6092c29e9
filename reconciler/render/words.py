"""Small wording helpers every renderer shares: counts in correct English, colour.

Returns strings only; must not print, read files or know about plans.
"""

from __future__ import annotations

from reconciler.model import Identity

#: The state path commands use when none is given; hints leave it out.
DEFAULT_STATE = "reconciler.state.json"


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``1 seat``, ``2 seats``, ``0 conflicts``: the number and its noun, agreeing."""
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"


def seats(n: int) -> str:
    return count(n, "seat")


def paint(text: str, code: str, color: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if color and code != "0" else text


def describe_identity(identity: Identity) -> str:
    return (
        f"tenant {identity.customer_tenant_id}, {identity.product}, "
        f"{identity.billing_cycle} {identity.term_duration} {identity.type}"
    )


def offline_note(reason: str) -> str:
    """Said in every format when Cloud-iQ was not read for a plan."""
    return (
        f"Cloud-iQ not read ({reason}): seats are compared with the state only, and "
        "nothing that needs Cloud-iQ (decreases, cancellations, renewal settings, "
        "adoptions, read before buying) is planned."
    )
