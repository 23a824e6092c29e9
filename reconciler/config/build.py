"""Checked documents -> ``Purchase``, ``Move``, ``Adopt`` and ``Removal`` records; names
unique across files, ``moved:``, ``import:`` and ``removed:`` entries consistent with
the declared names and with each other.

Trusts what it is given: a document comes here only once its file has no problem
at all, so it must not check fields (that is ``schema_errors``) nor read files.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.config.tree import Tree
from reconciler.errors import ConfigProblem
from reconciler.model import Adopt, Identity, Location, Move, Purchase, Removal


def purchases(tree: Tree, document: dict[str, Any]) -> tuple[list[Purchase], list[int]]:
    """The file's purchases, each with its defaults applied and where its name stands,
    and the index of each in the file's list."""
    defaults: dict[str, Any] = document.get("defaults", {})
    default_tags: dict[str, str] = defaults.get("tags", {})
    default_context: dict[str, str] = defaults.get("provisioningContext", {})
    items: list[dict[str, Any]] = document.get("purchases", [])
    # Where each purchase's name stands: found once per file (a tree lookup per
    # purchase from the root costs a quarter of building them).
    names = tree.value_marks(("purchases",), "name", len(items))
    path = tree.path
    built: list[Purchase] = []
    for index, item in enumerate(items):
        merged = {**defaults, **item} if defaults else item
        get = merged.get
        mark = names[index]
        built.append(
            Purchase(
                address=merged["name"],
                identity=Identity(
                    customer_tenant_id=merged["customerTenantId"],
                    product_id=merged["productId"],
                    sku_id=merged["skuId"],
                    billing_cycle=merged["billingCycle"],
                    term_duration=merged["termDuration"],
                    type=get("type", "subscription"),
                ),
                quantity=merged["quantity"],
                product_variant_id=get("productVariantId"),
                tags=_merged(default_tags, item.get("tags")),
                provisioning_context=_merged(default_context, item.get("provisioningContext")),
                attestation_accepted=get("attestationAccepted"),
                notification_email=get("notificationEmail"),
                invoice_profile_id=get("invoiceProfileId"),
                location=Location(path, mark.line + 1, mark.column + 1),
                allow_additional_subscription=bool(item.get("allowAdditionalSubscription")),
                seat_changes=get("seatChanges", "order"),
                auto_renew=get("autoRenew"),
            )
        )
    return built, list(range(len(items)))


def _merged(defaults: dict[str, str], own: dict[str, str] | None) -> dict[str, str]:
    """A purchase's tags (or provisioning context): the defaults', then its own."""
    if not own:
        return dict(defaults)
    return {**defaults, **own} if defaults else dict(own)


def duplicate_names(purchases: Sequence[Purchase], indexes: Sequence[int]) -> list[ConfigProblem]:
    """A problem for each purchase whose name an earlier one already has.

    ``indexes[i]`` is the index of ``purchases[i]`` in its file's list of purchases.
    """
    first: dict[str, Purchase] = {}
    problems = []
    for purchase, index in zip(purchases, indexes, strict=True):
        seen = first.setdefault(purchase.address, purchase)
        if seen is purchase or seen.location is None or purchase.location is None:
            continue
        where = purchase.location
        problems.append(
            ConfigProblem(
                where.path,
                where.line,
                where.column,
                f"purchases[{index}].name",
                f"duplicate name {purchase.address!r}: declared in {where.path}:{where.line} "
                f"and in {seen.location.path}:{seen.location.line}",
            )
        )
    return problems


@dataclass(frozen=True)
class MoveEntry:
    """A ``moved:`` entry while it is checked: its index and where its ``to`` stands."""

    move: Move
    index: int
    to: Location


def moves(tree: Tree, document: dict[str, Any]) -> list[MoveEntry]:
    """The file's ``moved:`` entries, each located at its ``from``."""
    built = []
    for index, item in enumerate(document.get("moved", [])):
        source, target = tree.mark(("moved", index, "from")), tree.mark(("moved", index, "to"))
        assert source is not None
        assert target is not None
        at = Location(tree.path, source.line + 1, source.column + 1)
        to = Location(tree.path, target.line + 1, target.column + 1)
        built.append(MoveEntry(Move(item["from"], item["to"], at), index, to))
    return built


def move_problems(entries: Sequence[MoveEntry], declared: set[str]) -> list[ConfigProblem]:
    """A problem for each ``moved:`` entry that could not be carried out as written.

    Its ``to`` must be declared and its ``from`` not (else nothing was renamed);
    a ``from`` and a ``to`` may each appear once across all files; and no entry may start where
    another ends, since a chain or cycle has no single recorded purchase to move.
    """
    problems: list[ConfigProblem] = []
    first: dict[str, MoveEntry] = {}
    first_to: dict[str, MoveEntry] = {}
    targets = {e.move.target: e.move for e in entries}

    def problem(entry: MoveEntry, field: str, message: str) -> None:
        at = entry.to if field == "to" else entry.move.location
        assert at is not None
        path = f"moved[{entry.index}].{field}"
        problems.append(ConfigProblem(at.path, at.line, at.column, path, message))

    for entry in entries:
        move = entry.move
        _repeated(
            entry,
            first.setdefault(move.source, entry),
            first_to.setdefault(move.target, entry),
            problem,
        )
        if move.target not in declared:
            problem(
                entry, "to", f"{move.target!r} is not declared; 'to' must name a declared purchase"
            )
        if move.source == move.target:
            problem(entry, "to", f"moves {move.source!r} to itself")
            continue
        if move.source in declared:
            problem(
                entry,
                "from",
                f"{move.source!r} is still declared; 'from' must be the old name, no longer "
                "declared",
            )
        before = targets.get(move.source)
        if before is not None:
            problem(
                entry,
                "from",
                f"{move.source!r} is itself moved from {before.source!r} (a chain or cycle); "
                "move each old name straight to its final name, e.g. "
                f"{{from: {before.source}, to: {move.target}}}",
            )
    return problems


@dataclass(frozen=True)
class Entry:
    """An ``import:`` or ``removed:`` entry while it is checked: which list, its index,
    and where its address stands."""

    record: Adopt | Removal
    index: int

    @property
    def address(self) -> str:
        return self.record.target if isinstance(self.record, Adopt) else self.record.address

    @property
    def where(self) -> Location:
        assert self.record.location is not None
        return self.record.location

    def field(self, name: str) -> str:
        listed = "import" if isinstance(self.record, Adopt) else "removed"
        return f"{listed}[{self.index}].{name}"


def entries(tree: Tree, document: dict[str, Any]) -> list[Entry]:
    """The file's ``import:`` and ``removed:`` entries, each located at its address."""
    built = []
    for index, item in enumerate(document.get("import", [])):
        at = tree.mark(("import", index, "to"))
        assert at is not None
        where = Location(tree.path, at.line + 1, at.column + 1)
        built.append(Entry(Adopt(item["to"], tuple(item["subscriptions"]), where), index))
    for index, item in enumerate(document.get("removed", [])):
        at = tree.mark(("removed", index, "address"))
        assert at is not None
        where = Location(tree.path, at.line + 1, at.column + 1)
        built.append(Entry(Removal(item["address"], item["cancel"], where), index))
    return built


def entry_problems(
    found: Sequence[Entry], declared: set[str], moves: Sequence[MoveEntry]
) -> list[ConfigProblem]:
    """A problem for each ``import:`` or ``removed:`` entry that cannot be carried out as
    written: an import into an address not declared, a subscription imported twice, a
    removal of an address still declared, renamed by ``moved:`` or removed twice."""
    problems: list[ConfigProblem] = []

    def problem(entry: Entry, field: str, message: str) -> None:
        where = entry.where
        problems.append(
            ConfigProblem(where.path, where.line, where.column, entry.field(field), message)
        )

    owner: dict[int, Entry] = {}
    removed: dict[str, Entry] = {}
    renamed = {m.move.source: m.move for m in moves}
    for entry in found:
        record = entry.record
        if isinstance(record, Adopt):
            if record.target not in declared:
                problem(
                    entry,
                    "to",
                    f"{record.target!r} is not declared; 'to' must name a declared purchase",
                )
            for subscription in record.subscriptions:
                first = owner.setdefault(subscription, entry)
                if first is not entry:
                    problem(
                        entry,
                        "subscriptions",
                        f"subscription {subscription} is also imported into {first.address!r} "
                        f"({first.where.path}:{first.where.line}); a subscription has one owner",
                    )
            continue
        if record.address in declared:
            problem(
                entry,
                "address",
                f"{record.address!r} is still declared; remove its purchase, or this entry",
            )
        move = renamed.get(record.address)
        if move is not None:
            problem(
                entry,
                "address",
                f"{record.address!r} is moved to {move.target!r} by 'moved:'; it cannot also be "
                "removed",
            )
        first_removal = removed.setdefault(record.address, entry)
        if first_removal is not entry:
            problem(
                entry,
                "address",
                f"{record.address!r} is removed twice: here and in "
                f"{first_removal.where.path}:{first_removal.where.line}",
            )
    return problems


def _repeated(
    entry: MoveEntry,
    seen: MoveEntry,
    into: MoveEntry,
    problem: Callable[[MoveEntry, str, str], None],
) -> None:
    """Problems of ``entry`` repeating the ``from`` of ``seen`` or the ``to`` of ``into``."""
    move = entry.move
    if seen is not entry and seen.move.location and move.location:
        problem(
            entry,
            "from",
            f"duplicate move from {move.source!r}: in {move.location.path}:"
            f"{move.location.line} and in {seen.move.location.path}:{seen.move.location.line}",
        )
    if into is not entry and into.move.location and move.location:
        # Two recorded purchases cannot both become one address: one would be lost.
        problem(
            entry,
            "to",
            f"{move.target!r} is already the target of the move from "
            f"{into.move.source!r} ({into.move.location.path}:{into.move.location.line}); "
            "two purchases cannot move to one address",
        )
