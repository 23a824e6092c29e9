"""The instants the tests record and compare, fixed so that outputs are exact."""

from __future__ import annotations

from datetime import UTC, datetime

#: When checkouts, imports and pending entries of the tests happen, as the state writes it.
T0 = "2026-11-26T19:00:00Z"
#: ``T0`` as a datetime, for the API's read records.
AT = datetime(2026, 11, 26, 19, 0, tzinfo=UTC)
