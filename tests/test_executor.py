"""The exactly-once algorithm (``reconciler.executor``), with a fake client and the
in-memory state store.

The store obeys the same ledger as every real store (tests/test_state_contract.py
holds them to one contract), so these tests need no files.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from reconciler import executor, planner
from reconciler.api.orders import LineError, OrderJson, VerifiedOrder, build_order
from reconciler.api.records import SubscriptionDetail
from reconciler.errors import ApiError, AuthenticationError, FailureKind
from reconciler.model import ApplyResult, Declarations, Outcome, Plan, Purchase, State
from reconciler.state import StateWriter
from tests.support.fakes import InMemoryStateStore
from tests.support.records import declarations, declared
from tests.support.times import T0

_ORDER_NUMBERS = itertools.count(1)  # unique across runs, as real externalOrderIds are


@dataclass
class FakeClient:
    """The client role the executor codes against (``api.orders.ApiClient``): records
    calls; ``checkout_faults`` maps an address to the error its checkout raises and
    ``verify_errors`` to the errors verify answers for it."""

    store: InMemoryStateStore
    checkout_faults: dict[str, BaseException] = field(default_factory=dict)
    verify_errors: dict[str, tuple[LineError, ...]] = field(default_factory=dict)
    verified: list[str] = field(default_factory=list)
    #: What each checkout sent back: address, quantity, id and the verify answer's echo.
    checked_out: list[dict[str, Any]] = field(default_factory=list)
    pending_seen_at_checkout: list[bool] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: The address each externalOrderId was built for.
    addresses: dict[str, str] = field(default_factory=dict)

    def build_order(self, purchase: Purchase, quantity: int, order_id: str) -> OrderJson:
        with self.lock:
            self.addresses[order_id] = purchase.address
        return build_order(purchase, quantity, order_id)

    def verify(self, order: OrderJson) -> VerifiedOrder:
        address = self.addresses[order["externalOrderId"]]
        with self.lock:
            self.verified.append(address)
        return VerifiedOrder({**order, "echo": True}, self.verify_errors.get(address, ()))

    def checkout(self, verified: VerifiedOrder) -> None:
        order_id = verified.body["externalOrderId"]
        address = self.addresses[order_id]
        # The pending entry must be persisted before the order leaves: a fresh load sees it.
        on_disk = self.store.load().pending.get(address)
        with self.lock:
            self.pending_seen_at_checkout.append(
                on_disk is not None and on_disk.external_order_id == order_id
            )
        fault = self.checkout_faults.get(address)
        if fault is not None:
            raise fault
        (line,) = verified.body["orderLines"]
        sent = {"address": address, "quantity": line["quantity"], "id": order_id}
        with self.lock:
            self.checked_out.append({**sent, "echo": verified.body["echo"]})

    # These plans only buy: an update of a subscription is a failure of the test.
    def get_subscription(self, subscription_id: int) -> SubscriptionDetail:
        raise AssertionError(f"read subscription {subscription_id} while only buying")

    def update_subscription(
        self,
        current: SubscriptionDetail,
        *,
        quantity: int | None = None,
        auto_renew: bool | None = None,
        status: int | None = None,
    ) -> SubscriptionDetail:
        raise AssertionError(f"updated subscription {current.id} while only buying")

    def cancel_subscription(self, current: SubscriptionDetail) -> SubscriptionDetail:
        raise AssertionError(f"cancelled subscription {current.id} while only buying")


def declaring(*wanted: tuple[str, int]) -> Declarations:
    """Declarations of ``BASIC`` purchases: (address, quantity) each."""
    return declarations(*(declared(address, quantity) for address, quantity in wanted))


def run(
    store: InMemoryStateStore,
    client: FakeClient,
    decl: Declarations,
    parallelism: int = 1,
) -> tuple[ApplyResult, State]:
    ids = (f"reconciler-{n}" for n in _ORDER_NUMBERS)
    with store.lock("test") as writer:
        plan = planner.plan(decl, writer.state)
        result = apply_with(writer, client, plan, ids, parallelism)
    return result, store.load()


def apply_with(
    writer: StateWriter, client: FakeClient, plan: Plan, ids: Iterator[str], parallelism: int
) -> ApplyResult:
    lock = threading.Lock()

    def new_id() -> str:
        with lock:
            return next(ids)

    return executor.apply(
        plan,
        executor.Collaborators(
            client=client,
            writer=writer,
            build_order=client.build_order,
            new_order_id=new_id,
            now=lambda: T0,
        ),
        parallelism=parallelism,
    )


@pytest.fixture
def store() -> InMemoryStateStore:
    created = InMemoryStateStore()
    assert created.create() is True
    return created


def ambiguous() -> ApiError:
    return ApiError("connection dropped after sending", kind=FailureKind.AMBIGUOUS, status=None)


def test_each_change_verified_recorded_pending_then_checked_out_once(
    store: InMemoryStateStore,
) -> None:
    client = FakeClient(store)
    result, state = run(store, client, declaring(("a/1", 3), ("a/2", 5)))
    assert result.ok
    assert [b["address"] for b in client.checked_out] == ["a/1", "a/2"]
    assert client.pending_seen_at_checkout == [True, True]
    assert all(b["echo"] for b in client.checked_out)  # the verify answer, not our order
    assert {a: p.quantity for a, p in state.purchases.items()} == {"a/1": 3, "a/2": 5}
    assert state.pending == {}
    assert state.purchases["a/1"].checkouts[0].external_order_id == client.checked_out[0]["id"]


def test_increase_buys_only_the_difference(store: InMemoryStateStore) -> None:
    client = FakeClient(store)
    run(store, client, declaring(("a/1", 3)))
    result, state = run(store, client, declaring(("a/1", 10)))
    assert [b["quantity"] for b in client.checked_out] == [3, 7]
    assert state.purchases["a/1"].quantity == 10
    assert result.seats_bought == 7


def test_ambiguous_checkout_stays_pending_and_starts_nothing_new(
    store: InMemoryStateStore,
) -> None:
    client = FakeClient(store, checkout_faults={"a/2": ambiguous()})
    result, state = run(store, client, declaring(("a/1", 1), ("a/2", 2), ("a/3", 3)))
    assert [r.outcome for r in result.results] == [
        Outcome.PURCHASED,
        Outcome.PENDING,
        Outcome.SKIPPED,
    ]
    assert "a/3" not in client.verified
    assert set(state.pending) == {"a/2"}
    assert state.pending["a/2"].quantity == 2
    assert not result.ok


def test_refused_checkout_clears_pending_and_goes_on(store: InMemoryStateStore) -> None:
    fault = ApiError(
        "refused", kind=FailureKind.DEFINITIVE, status=400, error_code="400 BadRequest"
    )
    client = FakeClient(store, checkout_faults={"a/1": fault})
    result, state = run(store, client, declaring(("a/1", 1), ("a/2", 2)))
    assert [r.outcome for r in result.results] == [Outcome.FAILED, Outcome.PURCHASED]
    assert state.pending == {}
    assert set(state.purchases) == {"a/2"}
    assert any("400 BadRequest" in line for line in result.results[0].errors)


def test_checkout_that_never_reached_the_api_clears_pending_and_stops(
    store: InMemoryStateStore,
) -> None:
    fault = ApiError("connection refused", kind=FailureKind.RETRYABLE)
    client = FakeClient(store, checkout_faults={"a/1": fault})
    result, state = run(store, client, declaring(("a/1", 1), ("a/2", 2)))
    assert [r.outcome for r in result.results] == [Outcome.FAILED, Outcome.SKIPPED]
    assert state.pending == {}
    assert state.purchases == {}


def test_refused_credentials_stop_the_run_without_pending(store: InMemoryStateStore) -> None:
    class Refusing(FakeClient):
        def verify(self, order: OrderJson) -> VerifiedOrder:
            super().verify(order)
            raise AuthenticationError("credentials refused", kind=FailureKind.DEFINITIVE)

    client = Refusing(store)
    result, state = run(store, client, declaring(("a/1", 1), ("a/2", 2), ("a/3", 3)))
    assert client.verified == ["a/1"]
    assert [r.outcome for r in result.results] == [Outcome.FAILED, Outcome.SKIPPED, Outcome.SKIPPED]
    assert state.pending == {}
    assert result.results[0].errors[0] == "credentials refused"


def test_verify_errors_fail_the_change_without_pending_or_checkout(
    store: InMemoryStateStore,
) -> None:
    issue = LineError(0, "QuantityOutOfRange", "Quantity exceeds the allowed maximum.")
    client = FakeClient(store, verify_errors={"a/1": (issue,)})
    result, state = run(store, client, declaring(("a/1", 99), ("a/2", 2)))
    assert result.results[0].outcome is Outcome.FAILED
    assert result.results[0].errors == (
        "verify: QuantityOutOfRange: Quantity exceeds the allowed maximum.",
    )
    assert [b["address"] for b in client.checked_out] == ["a/2"]
    assert state.pending == {}
    assert state.serial == 2  # pending + checkout of a/2 only


def test_unexpected_error_during_checkout_keeps_pending_and_propagates(
    store: InMemoryStateStore,
) -> None:
    client = FakeClient(store, checkout_faults={"a/1": RuntimeError("bug")})
    with pytest.raises(RuntimeError, match="bug"):
        run(store, client, declaring(("a/1", 1), ("a/2", 2)))
    state = store.load()
    assert set(state.pending) == {"a/1"}
    assert "a/2" not in client.verified


def test_parallel_apply_buys_each_change_exactly_once(store: InMemoryStateStore) -> None:
    client = FakeClient(store)
    wanted = [(f"c/{i:02d}", i + 1) for i in range(30)]
    result, state = run(store, client, declaring(*wanted), parallelism=8)
    assert result.ok
    assert sorted(b["address"] for b in client.checked_out) == [a for a, _ in wanted]
    assert {a: p.quantity for a, p in state.purchases.items()} == dict(wanted)
    assert len({b["id"] for b in client.checked_out}) == 30
    assert all(client.pending_seen_at_checkout)


def test_parallel_ambiguous_checkout_stops_new_starts(store: InMemoryStateStore) -> None:
    client = FakeClient(store, checkout_faults={"c/00": ambiguous()})
    wanted = [(f"c/{i:02d}", 1) for i in range(40)]
    result, state = run(store, client, declaring(*wanted), parallelism=2)
    assert result.count(Outcome.PENDING) == 1
    assert result.count(Outcome.SKIPPED) >= 30  # at most the in-flight ones finished
    assert set(state.pending) == {"c/00"}
    bought = {b["address"] for b in client.checked_out}
    assert bought == {a for a, p in state.purchases.items()}
