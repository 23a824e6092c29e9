"""Builders of declarations files, and a reader of them that does not use the reconciler.

``purchase`` and ``declare`` write the YAML a user writes; ``edit_purchase`` and
``remove_purchase`` change it in place; ``read_declared`` reads it back independently
of ``reconciler.config``, so that an oracle never trusts the code under test.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from tests.support.records import BASIC


def purchase(name: str, quantity: int, **fields: Any) -> dict[str, Any]:
    """A declared purchase of ``BASIC``; ``fields`` override or add camelCase fields."""
    return {
        "name": name,
        "customerTenantId": BASIC.customer_tenant_id,
        "productId": BASIC.product_id,
        "skuId": BASIC.sku_id,
        "quantity": quantity,
        "billingCycle": BASIC.billing_cycle,
        "termDuration": BASIC.term_duration,
        **fields,
    }


def declare(directory: Path, *purchases: dict[str, Any], name: str = "purchases.yaml") -> Path:
    """Write ``purchases`` as the declarations file ``directory/name``; returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(
        yaml.safe_dump({"version": 1, "purchases": list(purchases)}, sort_keys=False),
        encoding="utf-8",
    )
    return path


def file_declaring(decl: Path, address: str) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """The file under ``decl`` declaring ``address``: its path, its document, the purchase."""
    for file in sorted(decl.rglob("*.yaml")):
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
        for entry in data["purchases"]:
            if entry["name"] == address:
                return file, data, entry
    raise AssertionError(f"{address} is not declared under {decl}")


def edit_purchase(decl: Path, address: str, **fields: Any) -> None:
    """Change fields of one declaration (``quantity=23``, ``billingCycle="annual"``)."""
    file, data, entry = file_declaring(decl, address)
    entry.update(fields)
    file.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def remove_purchase(decl: Path, address: str) -> None:
    """Delete the declaration of ``address``."""
    file, data, entry = file_declaring(decl, address)
    data["purchases"].remove(entry)
    file.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


@dataclasses.dataclass(frozen=True)
class Declared:
    """A declared purchase as a test reads it from the YAML."""

    address: str
    tenant: int
    product: str  # "productId:skuId", as Simulator.seats takes it
    quantity: int
    billing_cycle: str
    term_duration: str
    type: str


def read_declared(path: Path) -> dict[str, Declared]:
    """The purchases declared under ``path`` (a file or a directory), by address."""
    files = [path] if path.is_file() else sorted(path.rglob("*.yaml"))
    found: dict[str, Declared] = {}
    for file in files:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
        defaults = data.get("defaults", {})
        for raw in data["purchases"]:
            entry = defaults | raw
            found[entry["name"]] = Declared(
                address=entry["name"],
                tenant=entry["customerTenantId"],
                product=f"{entry['productId']}:{entry['skuId']}",
                quantity=entry["quantity"],
                billing_cycle=entry["billingCycle"],
                term_duration=entry["termDuration"],
                type=entry.get("type", "subscription"),
            )
    return found


def renamed(decl: Path, quantity: int, *, moved: bool) -> Path:
    """Declarations of acme/new (``BASIC``) in ``decl``, where acme/old was declared before;
    with ``moved`` a ``moved:`` entry says acme/old is now acme/new. Returns ``decl``."""
    path = declare(decl, purchase("acme/new", quantity))
    if moved:
        with path.open("a", encoding="utf-8") as handle:
            handle.write("moved:\n- from: acme/old\n  to: acme/new\n")
    return decl


#: The customer tenant and the products ``declare_licences`` cycles through.
LICENCE_TENANT = 100001
LICENCE_PRODUCTS = (("CFQ7TTC0LF8R", "0010"), ("CFQ7TTC0LDPB", "0001"), ("CFQ7TTC0LH18", "0001"))


def declare_licences(root: Path, count: int) -> Path:
    """``root``/decl.yaml declaring ``count`` addresses acme/licence-NNN of tenant
    ``LICENCE_TENANT``, one to five seats each, the products taken in turn."""
    lines = [
        "version: 1",
        "defaults:",
        f"  customerTenantId: {LICENCE_TENANT}",
        "  billingCycle: monthly",
        "  termDuration: P1M",
        "purchases:",
    ]
    for i in range(count):
        product, sku = LICENCE_PRODUCTS[i % len(LICENCE_PRODUCTS)]
        lines += [
            f"  - name: acme/licence-{i:03d}",
            f"    productId: {product}",
            f'    skuId: "{sku}"',
            f"    quantity: {1 + i % 5}",
        ]
    root.mkdir(parents=True, exist_ok=True)
    path = root / "decl.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
