"""A fault storm against refresh: how many pending checkouts are left for a person?

200 purchases (``--purchases``) are applied against the simulator while each
checkout, with probability ``--rate`` (10%), is recorded by the API and then
answered with a dropped connection or a 500 (the ambiguous cases; apply leaves
the entry pending and starts nothing new). After every apply that stops this
way, ``reconciler refresh``'s use case runs; then apply again, until everything
is bought. Whatever refresh leaves pending is "left for a person": it is counted,
split by whether the API had recorded the checkout (the goal is none of those),
and then resolved as a person would after looking in Cloud-iQ.

``--unrecorded-rate`` adds checkouts answered 500 *without* being recorded:
refresh must leave those pending (the API proves nothing). ``--no-asset-orders``
hides the asset orders from refresh, so only the processed-orders rule can
settle anything. At the end every declared seat must have been bought exactly
once, and the state must hold exactly the declared seats.

Run: python benchmarks/storm_refresh.py [--purchases N] [--rate R] [--seed S]
         [--parallelism P] [--unrecorded-rate R] [--no-asset-orders] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_declarations

from reconciler import config
from reconciler.api.client import CrayonClient
from reconciler.api.orders import VerifiedOrder, build_order, new_external_order_id
from reconciler.api.records import AssetOrder
from reconciler.api.settings import ApiSettings
from reconciler.commands import apply as apply_commands
from reconciler.commands import refresh as refresh_commands
from reconciler.commands import state as state_commands
from reconciler.errors import PlanError
from reconciler.model import Event, Plan
from reconciler.simulator import Simulator
from reconciler.state import JsonFileStateStore, utc_now


class StormClient:
    """A real client whose checkouts the simulator fails at random, and whose asset
    orders can be hidden (``--no-asset-orders``)."""

    def __init__(
        self, sim: Simulator, chance: random.Random, args: argparse.Namespace, counts: Counts
    ) -> None:
        self._client = CrayonClient(ApiSettings.from_env(sim.env()))
        self._sim = sim
        self._chance = chance
        self._args = args
        self._counts = counts

    def verify(self, order: Any) -> VerifiedOrder:
        return self._client.verify(order)

    def checkout(self, verified: VerifiedOrder) -> None:
        roll = self._chance.random()
        if roll < self._args.rate:
            # Programmed just before this checkout is sent: at parallelism 1 it is this one.
            mode = self._chance.choice(["drop", "500"])
            self._sim.drop_after_checkout(1, mode=mode)  # type: ignore[arg-type]
            self._counts.recorded_then_failed += 1
        elif roll < self._args.rate + self._args.unrecorded_rate:
            self._sim.fail_checkout_unrecorded(1)
            self._counts.unrecorded += 1
        self._client.checkout(verified)

    def read_subscriptions(
        self, tenant: int, *, statuses: int | None = None, skip_unreadable: bool = False
    ) -> Any:
        return self._client.read_subscriptions(
            tenant, statuses=statuses, skip_unreadable=skip_unreadable
        )

    def read_processed_orders(self, tenant: int) -> Any:
        return self._client.read_processed_orders(tenant)

    def find_asset_orders(self, tenant: int, external_order_id: str) -> list[AssetOrder]:
        if self._args.no_asset_orders:
            return []
        return self._client.find_asset_orders(tenant, external_order_id)

    def read_agreement_products(self, tenant: int, search: str | None = None) -> Any:
        return self._client.read_agreement_products(tenant, search)

    @property
    def clock_skew(self) -> Any:
        return self._client.clock_skew

    def get_subscription(self, subscription_id: int) -> Any:
        return self._client.get_subscription(subscription_id)

    def update_subscription(self, current: Any, **changes: Any) -> Any:
        return self._client.update_subscription(current, **changes)

    def close(self) -> None:
        self._client.close()


@dataclass
class Counts:
    purchases: int = 0
    seats: int = 0
    applies: int = 0
    refreshes: int = 0
    recorded_then_failed: int = 0
    unrecorded: int = 0
    settled_purchased: int = 0
    settled_not_purchased: int = 0
    left_recorded: int = 0
    left_unrecorded: int = 0
    seconds: float = 0.0


class Quiet:
    """An apply listener that shows nothing."""

    def planned(self, plan: Plan) -> None:
        pass

    def refreshed(self, run: Any) -> None:
        pass

    def starting(self, plan: Plan, prices: object) -> None:
        pass

    def event(self, event: Event) -> None:
        pass


def storm(args: argparse.Namespace) -> Counts:
    counts = Counts()
    chance = random.Random(args.seed)
    files = max(1, args.purchases // 50)
    tenants = {100001 + f for f in range(files)}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, Simulator(tenants=tenants) as sim:
        decl = Path(tmp) / "decl"
        write_declarations(decl, purchases=args.purchases, files=files)
        declarations = config.load(decl)
        counts.purchases = len(declarations.purchases)
        counts.seats = sum(p.quantity for p in declarations.purchases)
        store = JsonFileStateStore(Path(tmp) / "state.json")
        store.create()

        def connect() -> StormClient:
            return StormClient(sim, chance, args, counts)

        for _ in range(10 * args.purchases):
            run = None
            try:
                run = apply_commands.run_apply(
                    apply_commands.ApplyRequest(declarations, parallelism=args.parallelism),
                    apply_commands.ApplyPorts(
                        store=store,
                        connect=connect,
                        approve=lambda plan, prices: True,
                        listener=Quiet(),
                        build_order=build_order,
                        new_order_id=new_external_order_id,
                        now=utc_now,
                    ),
                )
                counts.applies += 1
            except PlanError:
                pass  # refused: refresh below
            if run is not None and run.refreshed is not None:
                # Apply settles what the API proves before it plans: no person needed.
                counts.settled_purchased += len(run.refreshed.settled)
                counts.settled_not_purchased += len(run.refreshed.dropped)
            if run is not None and run.ok and run.result is None:
                break  # nothing left to buy
            if not store.load().pending:
                continue
            done = refresh_commands.run_refresh(
                declarations,
                store,
                connect=connect,
                show=lambda observations: None,
                approve=lambda: True,
                now=utc_now,
            )
            counts.refreshes += 1
            counts.settled_purchased += len(done.settled)
            counts.settled_not_purchased += len(done.dropped)
            taken = {c.external_order_id for c in sim.checkouts}
            for left in done.left:
                # What a person finds in Cloud-iQ, then tells the reconciler.
                recorded = left.pending.external_order_id in taken
                if recorded:
                    counts.left_recorded += 1
                else:
                    counts.left_unrecorded += 1
                state_commands.resolve(store, left.address, purchased=recorded)
        else:
            raise SystemExit("the storm did not end")
        sim.wait_idle()
        final = store.load()
        declared: dict[tuple[int, str], int] = {}
        for purchase in declarations.purchases:
            key = (purchase.identity.customer_tenant_id, purchase.identity.product)
            declared[key] = declared.get(key, 0) + purchase.quantity
            recorded = final.purchases[purchase.address].quantity
            if recorded != purchase.quantity:
                raise SystemExit(
                    f"{purchase.address}: declared {purchase.quantity}, recorded {recorded}"
                )
        for (tenant, product), seats in sorted(declared.items()):
            bought = sim.seats(tenant, product)
            if bought != seats:
                raise SystemExit(f"tenant {tenant} {product}: declared {seats}, bought {bought}")
    counts.seconds = time.perf_counter() - started
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--purchases", type=int, default=200)
    parser.add_argument("--rate", type=float, default=0.10, help="recorded-then-failed checkouts")
    parser.add_argument("--unrecorded-rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--parallelism", type=int, default=1)
    parser.add_argument("--no-asset-orders", action="store_true")
    parser.add_argument("--json", action="store_true", help="print the counts as JSON")
    args = parser.parse_args()
    counts = storm(args)
    if args.json:
        print(json.dumps(asdict(counts), sort_keys=True))
        return
    print(
        f"{counts.purchases} purchases ({counts.seats} seats), rate {args.rate:.0%} "
        f"recorded-then-failed, {args.unrecorded_rate:.0%} unrecorded, seed {args.seed}, "
        f"parallelism {args.parallelism}"
        + (", asset orders hidden" if args.no_asset_orders else "")
    )
    print(f"  applies {counts.applies}, refreshes {counts.refreshes}, {counts.seconds:.1f}s")
    print(
        f"  faults: {counts.recorded_then_failed} recorded then failed, "
        f"{counts.unrecorded} failed unrecorded"
    )
    print(
        f"  refresh settled {counts.settled_purchased} as purchased, "
        f"{counts.settled_not_purchased} as not purchased"
    )
    print(
        f"  left for a person: {counts.left_recorded} the API had recorded (goal 0), "
        f"{counts.left_unrecorded} it had not"
    )
    print("  every declared seat bought exactly once; the state holds exactly the declared seats")


if __name__ == "__main__":
    main()
