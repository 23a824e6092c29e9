"""Checked documents -> ``Purchase`` records; names unique across files.

Trusts what it is given: a document comes here only once its file has no problem
at all, so it must not check fields (that is ``schema_errors``) nor read files.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from reconciler.config.tree import Tree
from reconciler.errors import ConfigProblem
from reconciler.model import Identity, Location, Purchase


def purchases(tree: Tree, document: dict[str, Any]) -> tuple[list[Purchase], list[int]]:
    """The file's purchases, each with its defaults applied and where its name stands,
    and the index of each in the file's list."""
    defaults: dict[str, Any] = document.get("defaults", {})
    built: list[Purchase] = []
    indexes: list[int] = []
    for index, item in enumerate(document.get("purchases", [])):
        merged = {**defaults, **item}
        for name in ("tags", "provisioningContext"):
            merged[name] = {**defaults.get(name, {}), **item.get(name, {})}
        mark = tree.mark(("purchases", index, "name"))
        assert mark is not None
        indexes.append(index)
        built.append(
            Purchase(
                address=merged["name"],
                identity=Identity(
                    customer_tenant_id=merged["customerTenantId"],
                    product_id=merged["productId"],
                    sku_id=merged["skuId"],
                    billing_cycle=merged["billingCycle"],
                    term_duration=merged["termDuration"],
                    type=merged.get("type", "subscription"),
                ),
                quantity=merged["quantity"],
                product_variant_id=merged.get("productVariantId"),
                tags=merged["tags"],
                provisioning_context=merged["provisioningContext"],
                attestation_accepted=merged.get("attestationAccepted"),
                notification_email=merged.get("notificationEmail"),
                invoice_profile_id=merged.get("invoiceProfileId"),
                location=Location(tree.path, mark.line + 1, mark.column + 1),
            )
        )
    return built, indexes


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
