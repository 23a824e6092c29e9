"""What Cloud-iQ showed -> text, JSON and Markdown: drift, unmanaged subscriptions,
pending evidence, and what ``refresh`` and ``import`` did.

Used by ``plan --refresh`` (beside the plan ``render`` draws), ``refresh`` and
``import``. Product names and prices come from the caller's catalogue (the
``render.money`` mapping); an absent price reads "price unknown", never 0.
Returns strings only: never prints, reads files or decides exit codes.
"""

from __future__ import annotations

from typing import Any

from reconciler.model import Identity
from reconciler.observe import Drift, Evidence, Observations, Proof, Unmanaged
from reconciler.outcomes import ImportPlan, ImportRun, RefreshRun
from reconciler.render.markdown import code, text
from reconciler.render.money import Catalogue, name_of, unit_price
from reconciler.render.words import count, describe_identity, paint, seats

#: Rows of each Markdown table at most; the text form always lists everything.
MARKDOWN_ROWS = 100

_VERDICTS = {
    Proof.PURCHASED: "proven purchased",
    Proof.NOT_PURCHASED: "proven not purchased",
    Proof.UNKNOWN: "not settled",
}


def _product(identity: Identity, catalogue: Catalogue | None) -> str:
    """``tenant 1, P:S, monthly P1M subscription (Name, EUR 5.60 a seat)``."""
    name = name_of(identity, catalogue)
    if catalogue is None:
        return describe_identity(identity) + (f" ({name})" if name else "")
    price = unit_price(identity, catalogue)
    shown = f"{price.unit()} a seat" if price is not None else "price unknown"
    return describe_identity(identity) + f" ({name or 'name unknown'}, {shown})"


def _ids(ids: tuple[int, ...]) -> str:
    if not ids:
        return "no active subscription"
    label = "subscription" if len(ids) == 1 else "subscriptions"
    return f"{label} {', '.join(str(i) for i in ids)}"


def _delta(drift: Drift) -> str:
    return f"{drift.delta:+d}"


def summary_line(observations: Observations) -> str:
    """``Cloud-iQ: 1 address drifted, 2 unmanaged, 1 pending checkout proven.``"""
    proven = len(observations.settled)
    unsettled = len(observations.unsettled)
    parts = [
        count(len(observations.drift), "address drifted", "addresses drifted"),
        f"{len(observations.unmanaged)} unmanaged",
    ]
    if observations.evidence:
        parts.append(
            f"{count(proven, 'pending checkout')} proven, {unsettled} not settled by the API"
        )
    tenants = count(len(observations.tenants), "customer tenant")
    if observations.refused:
        tenants += f" read, {len(observations.refused)} refused"
    else:
        tenants += " read"
    return f"Cloud-iQ ({tenants}): {', '.join(parts)}."


def observations_text(
    observations: Observations, *, catalogue: Catalogue | None = None, color: bool = False
) -> str:
    """Drift, unmanaged subscriptions and pending evidence, then ``summary_line``."""
    lines: list[str] = []
    if observations.drift:
        lines.append("Drift: seats in Cloud-iQ (the subscriptions each address owns) against seats")
        lines.append("recorded")
        for drift in observations.drift:
            head = paint(f"  ~ {drift.address}", "33", color)
            lines.append(
                f"{head}  {drift.recorded} recorded, {drift.actual} in Cloud-iQ ({_delta(drift)})"
            )
            lines.append(f"      {_product(drift.identity, catalogue)}")
            lines.append(f"      {_ids(drift.subscriptions)}")
        lines.append("")
    if observations.links:
        lines.append("Subscriptions recorded at the addresses that own them")
        for link in observations.links:
            lines.append(f"  = {link.address}  subscription {link.subscription}: {link.how}")
        lines.append("")
    uncounted = _uncounted(observations)
    if uncounted:
        lines.append("Seats not taken from Cloud-iQ")
        lines += [f"  ! {address}: {why}" for address, why in uncounted]
        lines.append("")
    if observations.unmanaged:
        lines.append("Unmanaged: subscriptions no address owns")
        for free in observations.unmanaged:
            head = paint(f"  * {seats(free.seats)}", "36", color)
            lines.append(f"{head}  {_ids(free.subscription_ids)}")
            lines.append(f"      {_product(free.identity, catalogue)}")
            if free.of:
                lines.append(f"      of an identity {', '.join(free.of)} has: {_adopt_hint(free)}")
            if free.undeclarable:
                lines.append(f"      cannot be imported: {free.undeclarable}")
        tenants = sorted(
            {u.identity.customer_tenant_id for u in observations.unmanaged if not u.of}
        )
        if tenants:
            commands = ", ".join(f"`reconciler import --tenant {t}`" for t in tenants)
            lines.append(f"  {commands} adopts the others.")
        lines.append("")
    if observations.evidence:
        lines.append("Pending checkouts, as the API shows them")
        for _, found in sorted(observations.evidence.items()):
            lines += _evidence_lines(found, color)
        lines.append("")
    lines.append(summary_line(observations))
    return "\n".join(lines)


def _uncounted(observations: Observations) -> list[tuple[str, str]]:
    """Addresses whose seats Cloud-iQ does not tell, and why."""
    found = []
    for address, seen in observations.seats.items():
        why = seen.held or seen.doubtful
        if why:
            found.append((address, why))
    return found


def _adopt_hint(free: Unmanaged) -> str:
    ids = ", ".join(str(i) for i in free.subscription_ids)
    return f"adopt them with `import: [{{to: {free.of[0]}, subscriptions: [{ids}]}}]`"


def _evidence_lines(found: Evidence, color: bool) -> list[str]:
    pending = found.pending
    code_ = "32" if found.proof is Proof.PURCHASED else "35"
    head = paint(f"  ? {found.address}", code_, color)
    return [
        f"{head}  {pending.external_order_id} ({seats(pending.quantity)}, {pending.time}): "
        f"{_VERDICTS[found.proof]}",
        f"      {found.text}",
    ]


# --------------------------------------------------------------------------- JSON


def drift_dict(drift: Drift) -> dict[str, Any]:
    return {
        "identity": drift.identity.as_dict(),
        "addresses": [drift.address],
        "recorded": drift.recorded,
        "actual": drift.actual,
        "subscriptions": list(drift.subscriptions),
    }


def unmanaged_dict(found: Unmanaged) -> dict[str, Any]:
    return {
        "identity": found.identity.as_dict(),
        "seats": found.seats,
        "subscriptions": list(found.subscription_ids),
        "productName": found.product_name,
        "of": list(found.of),
    }


def evidence_dict(found: Evidence) -> dict[str, Any]:
    return {"verdict": found.proof.value, "text": found.text}


def add_observations(data: dict[str, Any], observations: Observations) -> dict[str, Any]:
    """A ``plan --json`` document with the additive keys of ``--refresh``: ``drift``,
    ``unmanaged``, and each pending change's ``evidence``."""
    data["drift"] = [drift_dict(d) for d in observations.drift]
    data["unmanaged"] = [unmanaged_dict(u) for u in observations.unmanaged]
    data["links"] = [
        {"address": link.address, "subscription": link.subscription, "how": link.how}
        for link in observations.links
    ]
    for change in data.get("changes", []):
        found = observations.evidence.get(change.get("address", ""))
        if found is not None and change.get("action") == "pending":
            change["evidence"] = evidence_dict(found)
    return data


# --------------------------------------------------------------------------- Markdown


def add_markdown(
    comment: str, observations: Observations, *, catalogue: Catalogue | None = None
) -> str:
    """``comment`` (a ``plan --format markdown`` body) with the Cloud-iQ section put
    before its footer (the last ``---`` line), or at its end when it has none."""
    section = "\n".join(observations_markdown(observations, catalogue=catalogue)) + "\n"
    split = comment.rfind("\n---\n")
    if split < 0:
        return comment + "\n" + section
    return comment[: split + 1] + section + "\n" + comment[split + 1 :]


def observations_markdown(
    observations: Observations, *, catalogue: Catalogue | None = None
) -> list[str]:
    lines = ["#### Cloud-iQ", "", text(summary_line(observations)), ""]
    if observations.drift:
        lines += [
            "| address | product | recorded | in Cloud-iQ | change | subscriptions | note |",
            "|---|---|---|---|---|---|---|",
        ]
        for drift in observations.drift[:MARKDOWN_ROWS]:
            lines.append(
                "| "
                + " | ".join(
                    [
                        code(drift.address),
                        text(_product(drift.identity, catalogue)),
                        str(drift.recorded),
                        str(drift.actual),
                        _delta(drift),
                        text(", ".join(str(i) for i in drift.subscriptions) or "-"),
                        "refresh records it",
                    ]
                )
                + " |"
            )
        lines += _more(len(observations.drift), "drifted addresses")
    if observations.unmanaged:
        lines += [
            "| unmanaged product | seats | subscriptions |",
            "|---|---|---|",
        ]
        for free in observations.unmanaged[:MARKDOWN_ROWS]:
            flag = f" ⚠️ beside {', '.join(code(a) for a in free.of)}" if free.of else ""
            lines.append(
                f"| {text(_product(free.identity, catalogue))}{flag} | {free.seats} | "
                f"{text(', '.join(str(i) for i in free.subscription_ids))} |"
            )
        lines += _more(len(observations.unmanaged), "unmanaged identities")
    if observations.evidence:
        lines += ["| pending | externalOrderId | API shows | evidence |", "|---|---|---|---|"]
        for _, found in list(sorted(observations.evidence.items()))[:MARKDOWN_ROWS]:
            lines.append(
                f"| {code(found.address)} | {code(found.pending.external_order_id)} | "
                f"{_VERDICTS[found.proof]} | {text(found.text)} |"
            )
        lines += _more(len(observations.evidence), "pending checkouts")
    return lines


def _more(total: int, what: str) -> list[str]:
    if total <= MARKDOWN_ROWS:
        return [""]
    return ["", f"_{total - MARKDOWN_ROWS} more {what} not shown._", ""]


# --------------------------------------------------------------------------- refresh, import


def refresh_result(run: RefreshRun, *, state_flags: str = "") -> str:
    """What ``refresh`` wrote and what it left to a person (on stdout)."""
    lines: list[str] = []
    for found in run.settled:
        lines.append(
            f"Settled {found.address}: {found.pending.external_order_id} recorded as purchased "
            f"(+{found.pending.quantity})."
        )
    for found in run.dropped:
        lines.append(
            f"Settled {found.address}: {found.pending.external_order_id} recorded as not "
            "purchased; the next apply buys it again."
        )
    for link in run.links:
        lines.append(f"Recorded subscription {link.subscription} at {link.address} ({link.how}).")
    for drift in run.adjusted:
        lines.append(
            f"Adjusted {drift.address}: {_delta(drift)} seats ({drift.recorded} -> "
            f"{drift.actual}), recorded as an adjustment."
        )
    if run.cancelled:
        lines.append("Refresh cancelled; nothing was written.")
    elif not run.writes:
        lines.append("Nothing to record: the state already agrees with what the API proves.")
    else:
        lines.append(
            f"Refresh complete: {count(len(run.settled) + len(run.dropped), 'pending operation')} "
            f"settled, {count(len(run.links), 'subscription')} and "
            f"{count(len(run.adjusted), 'adjustment')} recorded."
        )
    return "\n".join(lines)


def refused_message(observations: Observations) -> str:
    """The customer tenants the API refused to list (on stderr): nothing of them was
    read, so nothing was recorded for them."""
    return "\n".join(
        f"error: Cloud-iQ refused to list the subscriptions of customer tenant {tenant}: "
        f"{reason}; nothing was read or recorded for it"
        for tenant, reason in sorted(observations.refused.items())
    )


def left_message(run: RefreshRun, *, state_flags: str = "") -> str:
    """The pending entries the API does not settle, with what was found (on stderr)."""
    left = run.left
    lines = [
        f"{count(len(left), 'pending checkout')} still pending: the API does not prove "
        "their outcome. Check each in Cloud-iQ by its externalOrderId, then run "
        "`reconciler state resolve ADDR --purchased|--not-purchased`:"
    ]
    for found in left:
        lines.append(
            f"  {found.address}: {seats(found.pending.quantity)}, externalOrderId "
            f"{found.pending.external_order_id}"
        )
        lines.append(f"    found: {found.text}")
        lines.append(f"    reconciler state resolve {found.address} --purchased{state_flags}")
        lines.append(f"    reconciler state resolve {found.address} --not-purchased{state_flags}")
    return "\n".join(lines)


def import_text(the_plan: ImportPlan, out: str | None) -> str:
    """What ``import`` would adopt: new declarations, records at declared addresses, skips."""
    lines = []
    new = the_plan.new
    if new:
        lines.append(f"New declarations in {out} (recorded as imported, nothing bought):")
        for adoption in new:
            lines.append(
                f"  + {adoption.address}  {seats(adoption.quantity)}  "
                f"{_ids(adoption.subscriptions)}"
            )
            lines.append(f"      {describe_identity(adoption.identity)} ({adoption.product_name})")
    declared = [a for a in the_plan.adoptions if a.declared]
    if declared:
        lines.append("Declared but not recorded (recorded as imported, nothing bought):")
        for adoption in declared:
            lines.append(
                f"  + {adoption.address}  {seats(adoption.quantity)}  "
                f"{_ids(adoption.subscriptions)}"
            )
    for skipped in the_plan.skipped:
        lines.append(
            f"  skipped {describe_identity(skipped.identity)} ({_ids(skipped.subscriptions)}): "
            f"{skipped.reason}"
        )
    if not the_plan.adoptions:
        lines.append(
            f"Nothing to import: every active subscription of tenant {the_plan.tenant} is "
            "declared or recorded."
        )
    return "\n".join(lines)


def import_result(run: ImportRun) -> str:
    if run.cancelled:
        return "Import cancelled; nothing was written."
    if not run.plan.adoptions:
        return ""
    wrote = f"Wrote {count(len(run.plan.new), 'purchase')} to {run.out}; " if run.out else ""
    return (
        f"{wrote}recorded {count(run.recorded, 'purchase')} as imported "
        f"({seats(sum(a.quantity for a in run.plan.adoptions))}); nothing was bought."
    )
