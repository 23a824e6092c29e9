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
