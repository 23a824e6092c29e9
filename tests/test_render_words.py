"""Counts in words (``reconciler.render.words``)."""

from __future__ import annotations

import pytest

from reconciler import render


@pytest.mark.parametrize(("n", "text"), [(0, "0 seats"), (1, "1 seat"), (2, "2 seats")])
def test_seats_singular_and_plural(n: int, text: str) -> None:
    assert render.seats(n) == text
