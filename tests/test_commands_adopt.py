"""``reconciler import``'s pure part (``reconciler.commands.adopt``): names, skips and
the declarations file it writes."""

from __future__ import annotations

import dataclasses

import pytest

from reconciler import config
from reconciler.api.records import Subscription
from reconciler.commands.adopt import declarations_text, plan_import, slug
from reconciler.errors import ReconcilerError
from reconciler.model import Declarations, Identity, Purchase, RecordedPurchase, State
from reconciler.observe import Readings, observe
from tests.support import readings
from tests.support.records import BASIC, TENANT
from tests.support.times import T0


def subscription(
    id_: int,
    product: str,
    quantity: int,
    *,
    name: str = "Microsoft 365 Business Basic",
    cycle: str = "monthly",
    term: str | None = "P1M",
) -> Subscription:
    """A subscription as Cloud-iQ lists it, by part number ("productId:skuId")."""
    product_id, _, sku_id = product.partition(":")
    identity = Identity(TENANT, product_id, sku_id, cycle, term or "")
    listed = readings.subscription(id_, identity, quantity, name=name)
    return dataclasses.replace(listed, part_number=product, term_duration=term)


def imported(
    subscriptions: list[Subscription],
    declarations: Declarations | None = None,
    state: State | None = None,
    prefix: str = "tenant-111111",
) -> tuple[list[tuple[str, int]], list[str], str | None]:
    declarations = declarations or Declarations(())
    state = state or State("l")
    observations = observe(declarations, state, Readings({TENANT: subscriptions}))
    the_plan = plan_import(TENANT, declarations, state, observations, prefix=prefix)
    text = declarations_text(the_plan, generated_at=T0, command="import")
    return (
        [(a.address, a.quantity) for a in the_plan.adoptions],
        [s.reason for s in the_plan.skipped],
        text,
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Microsoft 365 Business Basic", "microsoft-365-business-basic"),
        ("Exchange Online (Plan 1)", "exchange-online-plan-1"),
        ("  Windows 10/11 Enterprise E3 ", "windows-10-11-enterprise-e3"),
        ("Ünïcode — only", "n-code-only"),
        ("***", ""),
    ],
)
def test_slug(name: str, expected: str) -> None:
    assert slug(name) == expected


def test_one_purchase_per_identity_with_unique_names() -> None:
    declared = Declarations(
        (
            Purchase(
                "tenant-111111/power-bi-pro",
                Identity(TENANT, "X", "1", "monthly", "P1M"),
                1,
            ),
        )
    )
    adoptions, skipped, text = imported(
        [
            subscription(1, "CFQ7TTC0LF8R:0010", 3),
            subscription(2, "CFQ7TTC0LF8R:0010", 2),
            subscription(3, "CFQ7TTC0LF8R:0010", 4, cycle="annual", term="P1Y"),
            subscription(4, "CFQ7TTC0LCHC:0002", 6, name="Power BI Pro"),
        ],
        declared,
    )
    assert sorted(adoptions) == [
        ("tenant-111111/microsoft-365-business-basic-annual-p1y", 4),
        ("tenant-111111/microsoft-365-business-basic-monthly-p1m", 5),
        ("tenant-111111/power-bi-pro-2", 6),
    ]
    assert skipped == []
    assert text is not None
    assert "  # Microsoft 365 Business Basic: subscriptions 1, 2\n" in text
    parsed = config.load_text(text, "tenant-111111.yaml")
    assert {p.address: p.quantity for p in parsed.purchases} == dict(adoptions)


def test_undeclarable_subscriptions_are_skipped_with_the_reason() -> None:
    adoptions, skipped, text = imported(
        [
            subscription(1, "LEGACY-PRODUCT", 3),
            subscription(2, "CFQ7TTC0LF8R:0010", 3, cycle="quarterly"),
            subscription(3, "CFQ7TTC0LCHC:0002", 3, term=None),
        ]
    )
    assert adoptions == []
    assert text is None
    assert sorted(skipped) == [
        "LEGACY-PRODUCT has no sku id (not a new-commerce product)",
        "billing cycle 'quarterly' cannot be declared",
        "term 'none' cannot be declared",
    ]


def test_any_product_name_gives_valid_declarations() -> None:
    odd = 'Tricky: "quoted" # not a comment\nsecond line \x07 bell'
    adoptions, _, text = imported([subscription(9, "CFQ7TTC0LF8R:0010", 2, name=odd)])
    assert adoptions == [("tenant-111111/tricky-quoted-not-a-comment-second-line-bell", 2)]
    assert text is not None
    assert '  # Tricky: "quoted" # not a comment second line bell: subscription 9\n' in text
    (purchase,) = config.load_text(text).purchases
    assert purchase.identity == BASIC


def test_recorded_identities_are_left_to_refresh_and_a_bad_prefix_is_refused() -> None:
    identity = BASIC
    state = State("l", 1, {"acme/basic": RecordedPurchase("acme/basic", identity, 2)})
    adoptions, _, text = imported([subscription(1, "CFQ7TTC0LF8R:0010", 5)], state=state)
    assert (adoptions, text) == ([], None)
    with pytest.raises(ReconcilerError, match="is not an address prefix"):
        imported([], prefix="Tenant 1")


def test_a_declared_unrecorded_address_is_adopted_where_it_is() -> None:
    identity = BASIC
    declared = Declarations((Purchase("acme/basic", identity, 5),))
    adoptions, _, text = imported([subscription(1, "CFQ7TTC0LF8R:0010", 4)], declared)
    assert (adoptions, text) == ([("acme/basic", 4)], None)
    acknowledged = Declarations(
        (dataclasses.replace(declared.purchases[0], allow_additional_subscription=True),)
    )
    adoptions, skipped, _ = imported([subscription(1, "CFQ7TTC0LF8R:0010", 4)], acknowledged)
    assert adoptions == []
    assert skipped == [
        "acme/basic sets allowAdditionalSubscription: it buys a subscription of its own "
        "beside these"
    ]
