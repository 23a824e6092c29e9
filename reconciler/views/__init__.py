"""What each command shows, per output format: the views.

A command's CLI module chooses its view once, from ``--format`` (``FORMATS``),
hands it the use case's result, and maps the result to an exit code. A view
writes through a ``Console`` (stdout and stderr, colour or not) and words
things only through ``render``; it reads model and outcome records and never a
store, a client or click.

    base       Console, PlanContext, the PlanView and ApplyView roles, the plan's
               diagnostics on stderr (the same in every format)
    text       the terminal: plan, show, apply progress and results
    json       ``plan --json``, ``show --json``, ``apply --json`` event lines
    markdown   ``plan --format markdown``: the pull-request comment
    github     ``validate --format github``: workflow commands that annotate the diff

``init``, ``state ...``, ``refresh`` and ``import`` have one format each: their
CLI modules echo what ``render.repairs`` and ``render.refresh`` word.

A new format is one module with a ``plan_view`` (and, where it makes sense, an
``apply_view``) and one row in ``FORMATS``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reconciler.views.base import ApplyView, Console, PlanView, ValidateView

#: Output formats: name -> the module holding its views (imported when chosen).
FORMATS: Mapping[str, str] = {
    "text": "reconciler.views.text",
    "json": "reconciler.views.json",
    "markdown": "reconciler.views.markdown",
    "github": "reconciler.views.github",
}


def plan_view(fmt: str, console: Console) -> PlanView:
    """The plan view of ``fmt`` (one of ``FORMATS``)."""
    make: Callable[[Console], PlanView] = _module(fmt).plan_view
    return make(console)


def apply_view(fmt: str, console: Console) -> ApplyView:
    """The apply view of ``fmt``; a format without one is refused by the CLI's choices."""
    make: Callable[[Console], ApplyView] = _module(fmt).apply_view
    return make(console)


def validate_view(fmt: str, console: Console) -> ValidateView:
    """The validate view of ``fmt``."""
    make: Callable[[Console], ValidateView] = _module(fmt).validate_view
    return make(console)


def _module(fmt: str) -> ModuleType:
    return importlib.import_module(FORMATS[fmt])
