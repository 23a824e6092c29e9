"""The import use case: adopt a customer tenant's existing subscriptions.

``plan_import`` (pure) decides, from what Cloud-iQ shows for one tenant: every
identity no declared or recorded address has becomes a new purchase (one per
identity, named after its product under a tenant prefix), and an identity
declared at exactly one address that holds no record yet is recorded at that
address. ``declarations_text`` writes the new purchases as a declarations file
whose comments carry the subscription ids. ``run_import`` reads under the state
lock, shows the plan, asks, writes the file (through the caller's
``write_file``) and records every adopted identity as imported: seats with no
checkout, so the next plan for them is a noop.

Never buys (it reads, then writes the state and one new file), never prints,
never reads the environment or builds a client.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence

from reconciler import config
from reconciler.commands.refresh import ClosableReader, read_cloud
from reconciler.errors import ReconcilerError
from reconciler.model import ADDRESS_MAX_LENGTH, Declarations, Identity, State, is_address
from reconciler.observe import Observations, observe
from reconciler.outcomes import Adoption, ImportPlan, ImportRun, Skipped
from reconciler.state import StateStore

#: The longest product part of a generated name (the prefix and suffixes need room).
_SLUG_LENGTH = 80
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
_UNPRINTABLE = re.compile(r"[^\x20-\x7e\u00a0-\ud7ff\ue000-\ufffd]")


def default_prefix(tenant: int) -> str:
    return f"tenant-{tenant}"


def slug(text: str) -> str:
    """``Microsoft 365 Business Basic`` -> ``microsoft-365-business-basic``."""
    return _NOT_SLUG.sub("-", text.casefold()).strip("-")[:_SLUG_LENGTH].strip("-")


def plan_import(
    tenant: int,
    declarations: Declarations,
    state: State,
    observations: Observations,
    *,
    prefix: str,
) -> ImportPlan:
    """What importing ``tenant`` adopts; see the module docstring."""
    if not is_address(prefix):
        raise ReconcilerError(
            f"{prefix!r} is not an address prefix (lower case letters, digits, '.', '_', "
            "'-', segments separated by '/')"
        )
    taken = {p.address for p in declarations.purchases} | set(state.purchases) | set(state.pending)
    adoptions: list[Adoption] = []
    skipped: list[Skipped] = []
    candidates = []
    acknowledged = {p.address for p in declarations.purchases if p.allow_additional_subscription}
    for found in observations.unmanaged:
        if found.identity.customer_tenant_id != tenant:
            continue
        reason = found.undeclarable or _held_by(found.of, state, acknowledged)
        if reason is not None:
            skipped.append(Skipped(found.identity, found.subscription_ids, reason))
        elif found.of:
            # Declared at one address that holds nothing yet: adopted there.
            (address,) = found.of
            adoptions.append(
                Adoption(
                    address,
                    found.identity,
                    found.seats,
                    found.subscription_ids,
                    found.product_name,
                    declared=True,
                )
            )
        else:
            candidates.append(found)
    names = _names(prefix, [(u.identity, u.product_name) for u in candidates], taken)
    for found, name in zip(candidates, names, strict=True):
        adoptions.append(
            Adoption(name, found.identity, found.seats, found.subscription_ids, found.product_name)
        )
    return ImportPlan(tenant, tuple(sorted(adoptions, key=lambda a: a.address)), tuple(skipped))


def _held_by(of: Sequence[str], state: State, acknowledged: set[str]) -> str | None:
    """Why subscriptions of an identity some address has are not import's to adopt."""
    if not of:
        return None
    recorded = [a for a in of if a in state.purchases or a in state.pending]
    if recorded:
        return (
            f"{', '.join(recorded)} already owns subscriptions of this identity; add these to "
            f"it with `import: [{{to: {recorded[0]}, subscriptions: [...]}}]` if they are its "
            "seats"
        )
    if len(of) > 1:
        return (
            f"{len(of)} addresses declare this identity ({', '.join(of)}); adopt them with "
            "an `import:` entry"
        )
    if of[0] in acknowledged:
        return (
            f"{of[0]} sets allowAdditionalSubscription: it buys a subscription of its own "
            "beside these"
        )
    return None


def existing_prefix(tenant: int, declarations: Declarations) -> str | None:
    """The address prefix the declarations already use for ``tenant`` (the first segment
    most of its addresses share), or None."""
    counts: dict[str, int] = {}
    for purchase in declarations.purchases:
        if purchase.identity.customer_tenant_id == tenant and "/" in purchase.address:
            head = purchase.address.rsplit("/", 1)[0]
            counts[head] = counts.get(head, 0) + 1
    if not counts:
        return None
    return max(sorted(counts), key=lambda head: counts[head])


def _names(prefix: str, products: Sequence[tuple[Identity, str]], taken: set[str]) -> list[str]:
    """A unique address per identity: the product name's slug under ``prefix``; products
    bought with several terms get the billing cycle and term added to each."""
    stems = [slug(name) or slug(identity.product) for identity, name in products]
    shared = {stem for stem in stems if stems.count(stem) > 1}
    names: list[str] = []
    used = set(taken)
    room = ADDRESS_MAX_LENGTH - len(prefix) - 1
    for (identity, _), stem in zip(products, stems, strict=True):
        if stem in shared:
            stem = slug(f"{stem}-{identity.billing_cycle}-{identity.term_duration}")
        stem = stem[: room - 4].strip("-")
        name, number = f"{prefix}/{stem}", 2
        while name in used:
            name, number = f"{prefix}/{stem}-{number}", number + 1
        used.add(name)
        names.append(name)
    return names


def declarations_text(the_plan: ImportPlan, *, generated_at: str, command: str) -> str | None:
    """The declarations file of the new purchases, or None when there is none."""
    new = the_plan.new
    if not new:
        return None
    lines = [
        f"# Adopted from Cloud-iQ by `{_printable(command)}` at {generated_at}.",
        "# Each purchase holds the seats of the active subscriptions named above it; the",
        "# state records them as imported (no checkout), so the next plan for them is a noop.",
        "version: 1",
        "purchases:",
    ]
    for adoption in new:
        identity = adoption.identity
        ids = ", ".join(str(i) for i in adoption.subscriptions)
        label = "subscription" if len(adoption.subscriptions) == 1 else "subscriptions"
        lines += [
            f"  # {_printable(adoption.product_name)}: {label} {ids}",
            f"  - name: {adoption.address}",
            f"    customerTenantId: {identity.customer_tenant_id}",
            f"    productId: {json.dumps(identity.product_id)}",
            f"    skuId: {json.dumps(identity.sku_id)}",
            f"    billingCycle: {identity.billing_cycle}",
            f"    termDuration: {identity.term_duration}",
            f"    type: {identity.type}",
            f"    quantity: {adoption.quantity}",
        ]
    return "\n".join(lines) + "\n"


def _printable(text: str) -> str:
    """``text`` on one line without control characters, fit for a YAML comment."""
    return " ".join(_UNPRINTABLE.sub(" ", text).split())


def check_names(text: str, out: str, declarations: Declarations) -> None:
    """Refuse generated declarations that ``validate`` would refuse beside the others."""
    generated = config.load_text(text, out)
    clashing = sorted(
        {p.address for p in generated.purchases} & {p.address for p in declarations.purchases}
    )
    if clashing:
        raise ReconcilerError(f"generated names already declared: {', '.join(clashing)}")


def run_import(
    tenant: int,
    declarations: Declarations,
    store: StateStore,
    *,
    connect: Callable[[], ClosableReader],
    prefix: str,
    out: str,
    command: str,
    show: Callable[[ImportPlan, str | None], None],
    approve: Callable[[], bool],
    write_file: Callable[[str, str], None],
    now: Callable[[], str],
) -> ImportRun:
    """Read ``tenant`` under the state lock, show what would be adopted, ask, then
    write the declarations file and record every adoption in the state."""
    with store.lock("reconciler import") as writer:
        reader = connect()
        try:
            readings = read_cloud(reader, declarations, writer.state, tenants=[tenant])
        finally:
            reader.close()
        if tenant in readings.refused:
            # Nothing of the tenant was read: "nothing to import" would be a guess.
            raise ReconcilerError(
                f"Cloud-iQ refused to list the subscriptions of customer tenant {tenant}: "
                f"{readings.refused[tenant]}; nothing was imported"
            )
        observations = observe(declarations, writer.state, readings)
        the_plan = plan_import(tenant, declarations, writer.state, observations, prefix=prefix)
        text = declarations_text(the_plan, generated_at=now(), command=command)
        if text is not None:
            check_names(text, out, declarations)
        show(the_plan, out if text is not None else None)
        if not the_plan.adoptions:
            return ImportRun(the_plan)
        if not approve():
            return ImportRun(the_plan, text, out, cancelled=True)
        # The state first: should the run die before the file is written, the adopted
        # addresses are recorded but not declared (orphans: warned about, never bought).
        # The other order would leave them declared but not recorded, and the next plan
        # would buy licences the customer already has.
        time = now()
        for adoption in the_plan.adoptions:
            writer.import_purchase(
                adoption.address,
                adoption.identity,
                adoption.quantity,
                time,
                subscriptions=adoption.subscriptions,
            )
        if text is not None:
            write_file(out, text)
    return ImportRun(the_plan, text, out if text is not None else None)
