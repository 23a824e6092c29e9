"""Regression tests for the product bugs the reliability suite found (each failed before
its fix).

- ``CrayonClient.close()`` left a connection open after an API error: urllib3 2 only
  forgets its pools when the session closes, and the error's response still held
  its pool, so the socket stayed open until the error was garbage-collected. An
  in-process apply that ended with an unknown checkout outcome kept a connection to
  the API open (the simulator's ``wait_idle`` then waited in vain).
"""

from __future__ import annotations

import gc

from reconciler.api.client import CrayonClient
from reconciler.api.settings import ApiSettings
from reconciler.errors import ApiError
from reconciler.simulator import Simulator


def test_closing_the_client_after_an_api_error_closes_its_connection(
    simulator: Simulator,
) -> None:
    client = CrayonClient(ApiSettings.from_env(simulator.env()))
    simulator.fail_next("orders", 404)
    try:
        client.list_orders(100001)
    except ApiError as error:
        kept = error  # as a caller that reports it later keeps it
    else:
        raise AssertionError("the injected 404 was not raised")
    gc.disable()  # the fix must not depend on a collection running first
    try:
        client.close()
        assert simulator.wait_idle(2), "the connection stayed open after close()"
    finally:
        gc.enable()
    assert kept.status == 404
