"""The ``moved:`` entries of the declarations (``reconciler.config.build``): read, and
every mistake located."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler import config
from reconciler.errors import ConfigError
from tests.support.declarations import declare, purchase

MOVED_DECL = """\
version: 1
purchases:
  - name: acme/new
    customerTenantId: 111111
    productId: CFQ7TTC0LF8R
    skuId: "0010"
    quantity: 2
    billingCycle: monthly
    termDuration: P1M
moved:
  - from: acme/old
    to: acme/new
  - from: acme/old
    to: acme/new
  - from: acme/x
    to: acme/nope
  - {from: acme/new, to: acme/new}
  - {from: acme/y, to: acme/old}
"""


def test_moved_entries_are_read_and_their_mistakes_located(tmp_path: Path) -> None:
    head = MOVED_DECL.split("moved:")[0]
    good = config.load_text(head + "moved:\n  - {from: acme/old, to: acme/new}\n")
    assert [(m.source, m.target) for m in good.moves] == [("acme/old", "acme/new")]

    with pytest.raises(ConfigError) as caught:
        config.load_text(MOVED_DECL, "d.yaml")
    assert [str(p) for p in caught.value.problems] == [
        "d.yaml:11:11: moved[0].from: 'acme/old' is itself moved from 'acme/y' (a chain or "
        "cycle); move each old name straight to its final name, e.g. "
        "{from: acme/y, to: acme/new}",
        "d.yaml:13:11: moved[1].from: 'acme/old' is itself moved from 'acme/y' (a chain or "
        "cycle); move each old name straight to its final name, e.g. "
        "{from: acme/y, to: acme/new}",
        "d.yaml:13:11: moved[1].from: duplicate move from 'acme/old': in d.yaml:13 and in "
        "d.yaml:11",
        "d.yaml:14:9: moved[1].to: 'acme/new' is already the target of the move from "
        "'acme/old' (d.yaml:11); two purchases cannot move to one address",
        "d.yaml:16:9: moved[2].to: 'acme/nope' is not declared; 'to' must name a declared purchase",
        "d.yaml:17:26: moved[3].to: 'acme/new' is already the target of the move from "
        "'acme/old' (d.yaml:11); two purchases cannot move to one address",
        "d.yaml:17:26: moved[3].to: moves 'acme/new' to itself",
        "d.yaml:18:24: moved[4].to: 'acme/old' is not declared; 'to' must name a declared purchase",
    ]


def test_a_duplicate_from_across_files_is_located_in_both(tmp_path: Path) -> None:
    declare(tmp_path, purchase("acme/a", 1), purchase("acme/b", 1), name="a.yaml")
    for name, target in (("m1.yaml", "acme/a"), ("m2.yaml", "acme/b")):
        (tmp_path / name).write_text(
            f"version: 1\nmoved:\n  - {{from: acme/old, to: {target}}}\n", encoding="utf-8"
        )

    with pytest.raises(ConfigError) as caught:
        config.load(tmp_path)

    m1, m2 = tmp_path / "m1.yaml", tmp_path / "m2.yaml"
    assert [str(p) for p in caught.value.problems] == [
        f"{m2}:3:12: moved[0].from: duplicate move from 'acme/old': in {m2}:3 and in {m1}:3"
    ]


def test_two_moves_to_one_address_are_refused_not_half_ignored(tmp_path: Path) -> None:
    declare(tmp_path, purchase("acme/new", 1), name="a.yaml")
    (tmp_path / "m.yaml").write_text(
        "version: 1\nmoved:\n  - {from: acme/old1, to: acme/new}\n"
        "  - {from: acme/old2, to: acme/new}\n",
        encoding="utf-8",
    )

    with pytest.raises(ConfigError) as caught:
        config.load(tmp_path)

    m = tmp_path / "m.yaml"
    assert [str(p) for p in caught.value.problems] == [
        f"{m}:4:27: moved[1].to: 'acme/new' is already the target of the move from "
        f"'acme/old1' ({m}:3); two purchases cannot move to one address"
    ]


SEATS_DECL = """\
version: 1
defaults:
  customerTenantId: 111111
  billingCycle: monthly
  termDuration: P1M
  autoRenew: false
purchases:
  - name: acme/basic
    productId: CFQ7TTC0LF8R
    skuId: "0010"
    quantity: 5
    seatChanges: update
  - name: acme/e3
    productId: CFQ7TTC0LFLZ
    skuId: "0002"
    quantity: 2
    autoRenew: true
"""


def test_seat_changes_and_renewal_are_read_with_their_defaults() -> None:
    declared = config.load_text(SEATS_DECL).by_address()
    basic, e3 = declared["acme/basic"], declared["acme/e3"]
    assert (basic.seat_changes, basic.auto_renew) == ("update", False)
    assert (e3.seat_changes, e3.auto_renew) == ("order", True)


def test_seat_changes_and_renewal_change_the_digest_only_when_set() -> None:
    plain = config.load_text(SEATS_DECL.replace("  autoRenew: false\n", ""))
    stated = config.load_text(SEATS_DECL)
    assert plain.digest() != stated.digest()
    without = SEATS_DECL.replace("    seatChanges: update\n", "").replace(
        "  autoRenew: false\n", ""
    )
    unset = config.load_text(without.replace("    autoRenew: true\n", ""))
    by_default = config.load_text(
        without.replace("    autoRenew: true\n", "").replace(
            "    quantity: 5\n", "    quantity: 5\n    seatChanges: order\n"
        )
    )
    assert unset.digest() == by_default.digest()  # order is the default


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("seatChanges: checkout", "purchases[0].seatChanges: 'checkout' is not one of"),
        ("autoRenew: maybe", "purchases[0].autoRenew: 'maybe' is not of type 'boolean'"),
    ],
)
def test_a_wrong_seat_setting_is_located(line: str, message: str) -> None:
    text = SEATS_DECL.replace("    seatChanges: update", f"    {line}")
    with pytest.raises(ConfigError) as caught:
        config.load_text(text, "acme.yaml")
    (problem,) = caught.value.problems
    assert "acme.yaml:12:" in str(problem)
    assert message in str(problem)


def test_import_and_removed_entries_are_read_and_sorted() -> None:
    text = (
        SEATS_DECL
        + "import:\n  - to: acme/e3\n    subscriptions: [500007]\n"
        + "  - to: acme/basic\n    subscriptions: [500002, 500001]\n"
        + "removed:\n  - {address: acme/old, cancel: true}\n"
        + "  - {address: acme/gone, cancel: false}\n"
    )
    read = config.load_text(text)
    assert [(a.target, a.subscriptions) for a in read.adoptions] == [
        ("acme/basic", (500002, 500001)),
        ("acme/e3", (500007,)),
    ]
    assert [(r.address, r.cancel) for r in read.removals] == [
        ("acme/gone", False),
        ("acme/old", True),
    ]
    assert read.digest() != config.load_text(SEATS_DECL).digest()


ENTRIES = """\
import:
  - to: acme/basic
    subscriptions: [500001, 500002]
  - to: acme/nope
    subscriptions: [500002]
removed:
  - address: acme/basic
    cancel: true
  - address: acme/old
    cancel: false
  - address: acme/old
    cancel: true
  - address: acme/renamed
    cancel: true
moved:
  - from: acme/renamed
    to: acme/e3
"""


def test_every_mistake_of_import_and_removed_is_located() -> None:
    with pytest.raises(ConfigError) as caught:
        config.load_text(SEATS_DECL + ENTRIES, "acme.yaml")
    shown = [str(p) for p in caught.value.problems]
    assert shown == [
        "acme.yaml:21:9: import[1].to: 'acme/nope' is not declared; 'to' must name a "
        "declared purchase",
        "acme.yaml:21:9: import[1].subscriptions: subscription 500002 is also imported into "
        "'acme/basic' (acme.yaml:19); a subscription has one owner",
        "acme.yaml:24:14: removed[0].address: 'acme/basic' is still declared; remove its "
        "purchase, or this entry",
        "acme.yaml:28:14: removed[2].address: 'acme/old' is removed twice: here and in "
        "acme.yaml:26",
        "acme.yaml:30:14: removed[3].address: 'acme/renamed' is moved to 'acme/e3' by "
        "'moved:'; it cannot also be removed",
    ]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            "import:\n  - to: acme/basic\n    subscriptions: []\n",
            "import[0].subscriptions: [] should be non-empty",
        ),
        (
            "import:\n  - to: acme/basic\n    subscriptions: [5, 5]\n",
            "import[0].subscriptions: [5, 5] has non-unique elements",
        ),
        (
            "import:\n  - to: acme/basic\n    subscriptions: [0]\n",
            "import[0].subscriptions[0]: 0 is less than the minimum of 1",
        ),
        ("import:\n  - to: acme/basic\n", "import[0]: missing required key 'subscriptions'"),
        ("removed:\n  - address: acme/old\n", "removed[0]: missing required key 'cancel'"),
        (
            "removed:\n  - {address: acme/old, cancel: true, now: yes}\n",
            "removed[0].now: unknown key 'now'",
        ),
    ],
)
def test_malformed_entries_are_refused_with_their_place(entry: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config.load_text(SEATS_DECL + entry, "acme.yaml")
    assert any(message in str(p) for p in caught.value.problems), caught.value.problems
