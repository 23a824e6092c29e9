"""Helpers shared by the benchmark scripts: generated declarations and timing."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

PRODUCTS = [
    ("CFQ7TTC0LF8R", "0010"),
    ("CFQ7TTC0LDPB", "0001"),
    ("CFQ7TTC0LH18", "0001"),
    ("CFQ7TTC0LFLZ", "0002"),
    ("CFQ7TTC0LCHC", "0002"),
]


def write_declarations(root: Path, purchases: int, files: int) -> list[Path]:
    """``purchases`` declarations spread over ``files`` files, one tenant per file."""
    root.mkdir(parents=True, exist_ok=True)
    per_file = purchases // files
    written = []
    for f in range(files):
        lines = [
            "version: 1",
            "defaults:",
            f"  customerTenantId: {100001 + f}",
            "  billingCycle: monthly",
            "  termDuration: P1M",
            "purchases:",
        ]
        for i in range(per_file):
            product, sku = PRODUCTS[i % len(PRODUCTS)]
            lines += [
                f"  - name: customer-{f:03d}/licence-{i:05d}",
                f"    productId: {product}",
                f'    skuId: "{sku}"',
                f"    quantity: {1 + i % 50}",
                "    tags:",
                f"      costCenter: CC-{i % 7}",
            ]
        path = root / f"customer-{f:03d}.yaml"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        written.append(path)
    return written


def paired_best(
    runs: int, first: Callable[[], object], second: Callable[[], object]
) -> tuple[float, float]:
    """The fastest timing of each of two functions, run alternately so that the
    machine's drift (other tenants, CPU clock) falls on both alike."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(runs):
        for fn, bucket in ((first, times[0]), (second, times[1])):
            start = time.perf_counter()
            fn()
            bucket.append(time.perf_counter() - start)
    return min(times[0]), min(times[1])


def best_of(runs: int, fn: Callable[[], object]) -> float:
    """The fastest of ``runs`` timings, in seconds (the least disturbed run)."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def median_of(runs: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
