"""Moved to ``tests/support/fakes.py``; kept so that ``from tests.fakes import ...`` works."""

from tests.support.fakes import InMemoryStateStore as InMemoryStateStore
