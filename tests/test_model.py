"""The model's records (``reconciler.model``)."""

from __future__ import annotations

from dataclasses import replace

import yaml

from reconciler import config
from reconciler.model import Move
from tests.support.declarations import purchase


def test_moved_leaves_the_digest_of_declarations_without_moves_alone() -> None:
    plain = config.load_text(yaml.safe_dump({"version": 1, "purchases": [purchase("acme/new", 2)]}))
    assert plain.moves == ()
    assert replace(plain, moves=(Move("acme/old", "acme/new"),)).digest() != plain.digest()
