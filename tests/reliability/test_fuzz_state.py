"""Damaged state files and journals: truncations at every byte, bit flips, lines lost,
doubled or swapped. Never a traceback (only ``StateError``), and never an
acknowledged record dropped without a word.

Two real journals are damaged, each beside the state file it belongs to (marked
with ``"journal"``): one left by a real ``python -m reconciler apply`` of 5
purchases killed by the crash hook right before it compacts (10 lines: a pending
entry and a checkout per purchase), and one written through the file store by a
locked run making every kind of write (import, pending, checkout, move, removals).
Every line of both was acknowledged (written and fsynced) before the damage.

What is checked, against the states replayed from the first k complete lines (S_k):

- a journal cut at any byte loads S_k (k: the lines complete before the cut) or is a
  ``StateError``: a torn last line is ignored, nothing before it is lost or changed;
- a journal with a torn line appended after its last one (a crash in the middle of
  a write) loads S_N: every acknowledged record;
- a line deleted, doubled or swapped with the next, a cut state file, any bit flip
  of either file: a ``StateError`` or a state, never another exception.

And what the journal's checksums and the acknowledged-serial mark are for: a
journal cut *before its last line* must not lose the acknowledged lines
after the cut silently (as if the cut were a torn last write); a bit flip
that leaves a journal line valid JSON must not change an acknowledged record
unnoticed; a state file whose serial falls inside its journal must not make the
reader skip lines. Each line carries its run's id and a CRC-32, and the state
file's mark records the serial of the last acknowledged line (updated in place
after each fsync): with the state file as the run left it, even a cut inside the
last line is refused. S_k is replayed with the state file a run that acknowledged
k lines leaves. The state file itself carries no checksum (a plain, diff-friendly
JSON file): a flip inside a recorded purchase that keeps it valid JSON changes it
unnoticed; the samples' state files hold none (both start empty).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import harness
import pytest
from harness import TALLY, Outputs

from reconciler.errors import StateError
from reconciler.model import CheckoutRecord, Identity, PendingOperation, State
from reconciler.state import JsonFileStateStore

T0 = "2026-11-26T19:00:00Z"
IDENTITY = Identity(111111, "CFQ7TTC0LF8R", "0010", "monthly", "P1M")
#: Lines of each journal (known before collection, for one test per line).
LINES = {"apply": 10, "repairs": 9}


@dataclass
class Sample:
    """A state file and its journal, every line acknowledged, and a place to damage copies."""

    name: str
    state: bytes
    journal: bytes
    work: Path

    @property
    def lines(self) -> list[bytes]:
        return [line + b"\n" for line in self.journal.split(b"\n")[:-1]]

    @property
    def starts(self) -> list[int]:
        """Byte offset at which each line starts, and the journal's length last."""
        offsets = [0]
        for line in self.lines:
            offsets.append(offsets[-1] + len(line))
        return offsets

    def load(self, journal: bytes, state: bytes | None = None) -> State | StateError:
        """The state the real store loads from these bytes (or its StateError); any
        other exception propagates and fails the test."""
        path = self.work / "reconciler.state.json"
        _put(path, self.state if state is None else state)
        _put(path.with_name(path.name + ".journal"), journal)
        try:
            return JsonFileStateStore(path).load()
        except StateError as error:
            return error

    def acknowledging(self, k: int) -> bytes:
        """The state file as the run left it when line k had just been acknowledged (its
        mark records the serial of the last acknowledged line; 0: none yet)."""
        serial = json.loads(self.state)["serial"] + k
        state, count = re.subn(
            rb'"acknowledgedSerial": "[0-9]{20}"',
            b'"acknowledgedSerial": "%020d"' % serial,
            self.state,
        )
        assert count == 1
        return state

    def replayed(self) -> list[State]:
        """S_0 .. S_N: the state after the first k lines (the journal of a run that
        acknowledged k lines, with the state file as that run left it)."""
        states = []
        for k in range(len(self.lines) + 1):
            state = self.load(b"".join(self.lines[:k]), self.acknowledging(k))
            assert isinstance(state, State), (k, state)
            states.append(state)
        return states


_written: dict[Path, bytes] = {}


def _put(path: Path, data: bytes) -> None:
    """Write ``data`` over ``path`` in place: truncating a file to nothing and writing it
    again costs far more on some file systems, and this runs tens of thousands of times."""
    if _written.get(path) == data:
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)
    _written[path] = data


def _apply_journal(root: Path, outputs: Outputs) -> tuple[bytes, bytes]:
    """The state file and journal a real apply of 5 purchases leaves when it is killed
    right before it compacts (the crash hook's first step of ``_compact``)."""
    base_env = dict(os.environ)
    counted = harness.file_world(root / "count", outputs, base_env)
    killed = harness.file_world(root / "killed", outputs, base_env)
    try:
        compaction = None
        for world, hook in ((counted, {}), (killed, None)):
            world.cli("init", *world.state_args)
            world.declare(harness.purchases(5, tenants=[100001]))
            log = world.root / "steps.jsonl"
            variables = {"RECONCILER_TEST_CRASH_LOG": str(log)}
            if hook is None:
                variables |= {"RECONCILER_TEST_CRASH_AT": str(compaction)}
            proc = world.spawn(
                "apply", str(world.decl), *world.state_args, "--auto-approve", hook=variables
            )
            code, out, err = world.finish(proc, "apply for the journal")
            if hook is not None:
                assert code == 0, f"{out}\n{err}"
                steps = [json.loads(line) for line in log.read_text().splitlines()]
                compaction = next(
                    s["n"] for s in steps if "_compact" in s["where"] or "_close" in s["where"]
                )
            else:
                assert code == harness.HOOK_KILLED, f"{out}\n{err}"
        state = Path(killed.state)
        return state.read_bytes(), state.with_name(state.name + ".journal").read_bytes()
    finally:
        counted.stop()
        killed.stop()


def _repairs_journal(root: Path) -> tuple[bytes, bytes]:
    """A journal with every kind of write, made through the file store under one lock."""
    path = root / "reconciler.state.json"
    store = JsonFileStateStore(path)
    store.create()
    with store.lock("reconciler apply") as writer:
        writer.import_purchase("acme/imported", IDENTITY, 3, T0)
        for number in range(2):
            op = PendingOperation(f"acme/p{number}", IDENTITY, f"reconciler-{number:032x}", 4, T0)
            writer.add_pending(op)
            writer.record_checkout(
                op.address, IDENTITY, CheckoutRecord(op.external_order_id, 4, T0)
            )
        writer.move_purchase("acme/p0", "acme/moved")
        writer.remove_purchase("acme/imported")
        writer.add_pending(PendingOperation("acme/q", IDENTITY, "reconciler-" + "e" * 32, 2, T0))
        writer.remove_pending("acme/q")
        journal = path.with_name(path.name + ".journal")
        copies = path.read_bytes(), journal.read_bytes()
    return copies


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Sample]]:
    outputs = Outputs()
    root = tmp_path_factory.mktemp("journals")
    made = {
        "apply": Sample("apply", *_apply_journal(root / "apply", outputs), root / "work-apply"),
        "repairs": Sample("repairs", *_repairs_journal(_dir(root / "repairs")), root / "w2"),
    }
    for sample in made.values():
        sample.work.mkdir()
        assert b'"journal"' in sample.state
        assert len(sample.lines) == LINES[sample.name], sample.journal.decode()
    outputs.add_tree(root)
    assert not outputs.leaks()
    yield made
    shutil.rmtree(root)


def _dir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def _cut_lines(sample: Sample) -> Callable[[int], int]:
    """How many lines are complete in the first ``b`` bytes."""
    starts = sample.starts
    return lambda b: sum(1 for end in starts[1:] if end <= b)


# -- what holds today -------------------------------------------------------------


@pytest.mark.parametrize("name", LINES)
def test_a_journal_cut_anywhere_loads_its_complete_lines_or_is_refused(
    samples: dict[str, Sample], name: str
) -> None:
    sample = samples[name]
    replayed = sample.replayed()
    complete = _cut_lines(sample)
    silent_losses = 0
    for cut in range(len(sample.journal)):
        got = sample.load(sample.journal[:cut])
        k = complete(cut)
        assert isinstance(got, StateError) or got == replayed[k], (name, cut, got)
        if not isinstance(got, StateError) and k < len(sample.lines):
            silent_losses += 1
        TALLY.add("truncations (journal)")
    TALLY.add("truncations (journal) read as a torn last write, losing acked lines", silent_losses)


@pytest.mark.parametrize("name", LINES)
def test_a_torn_line_after_the_last_one_loads_every_acknowledged_record(
    samples: dict[str, Sample], name: str
) -> None:
    sample = samples[name]
    full = sample.replayed()[-1]
    # The line a writer would have appended next, cut at every byte before its newline.
    entry = json.loads(sample.lines[-1])
    entry["serial"] += 1
    following = json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()
    for cut in range(len(following)):
        got = sample.load(sample.journal + following[:cut])
        assert got == full, (name, cut, got)
        TALLY.add("torn final lines (journal)")


@pytest.mark.parametrize("name", LINES)
def test_a_journal_line_lost_doubled_or_swapped_is_refused(
    samples: dict[str, Sample], name: str
) -> None:
    sample = samples[name]
    lines = sample.lines
    for k in range(len(lines) - 1):  # losing the last line is a cut: see above
        damaged = {
            "lost": lines[:k] + lines[k + 1 :],
            "doubled": lines[: k + 1] + lines[k:],
            "swapped": [*lines[:k], lines[k + 1], lines[k], *lines[k + 2 :]],
        }
        for how, journal in damaged.items():
            got = sample.load(b"".join(journal))
            assert isinstance(got, StateError), (name, how, k + 1, got)
            TALLY.add("journals with a line lost, doubled or swapped")


@pytest.mark.parametrize("name", LINES)
def test_a_state_file_cut_anywhere_is_refused(samples: dict[str, Sample], name: str) -> None:
    sample = samples[name]
    full = sample.replayed()[-1]
    for cut in range(len(sample.state)):
        got = sample.load(sample.journal, sample.state[:cut])
        # Only the final newline may go: the rest is the same JSON.
        assert isinstance(got, StateError) or (cut == len(sample.state) - 1 and got == full)
        TALLY.add("truncations (state file)")


def _flips(data: bytes, every_bit: bool) -> Iterator[tuple[int, int, bytes]]:
    """(byte, bit, damaged copy): every bit, or in CI two bits of each byte (fixed)."""
    for index in range(len(data)):
        bits = range(8) if every_bit else sorted({index % 8, (index * 5 + 3) % 8})
        for bit in bits:
            damaged = bytearray(data)
            damaged[index] ^= 1 << bit
            yield index, bit, bytes(damaged)


@pytest.mark.parametrize("name", LINES)
@pytest.mark.parametrize("target", ["journal", "state file"])
def test_a_bit_flip_anywhere_is_a_state_error_or_a_state(
    samples: dict[str, Sample], name: str, target: str, scale: int
) -> None:
    sample = samples[name]
    full = sample.replayed()[-1]
    outcome = {"refused": 0, "unchanged": 0, "changed unnoticed": 0}
    data = sample.journal if target == "journal" else sample.state
    for _, _, damaged in _flips(data, every_bit=scale > 1):
        got = sample.load(damaged) if target == "journal" else sample.load(sample.journal, damaged)
        if isinstance(got, StateError):
            outcome["refused"] += 1
        else:
            assert isinstance(got, State)
            outcome["unchanged" if got == full else "changed unnoticed"] += 1
    for what, count in outcome.items():
        TALLY.add(f"bit flips ({target}): {what}", count)


# -- cuts and flips the checksums and the acknowledged-serial mark catch -------------


def _cut_cases() -> list[object]:
    return [
        pytest.param(name, line, id=f"{name}-line{line}")
        for name, count in LINES.items()
        for line in range(1, count)
    ]


@pytest.mark.parametrize(("name", "line"), _cut_cases())
def test_a_journal_cut_before_its_last_line_is_refused(
    samples: dict[str, Sample], name: str, line: int
) -> None:
    """Every cut from the start of ``line`` up to the start of the next one."""
    sample = samples[name]
    full = sample.replayed()[-1]
    for cut in range(sample.starts[line - 1], sample.starts[line]):
        got = sample.load(sample.journal[:cut])
        assert isinstance(got, StateError) or got == full, f"cut at byte {cut}: {got}"


def _assert_flips_detected(sample: Sample, *, state: bool) -> None:
    full = sample.replayed()[-1]
    data = sample.state if state else sample.journal
    for index, bit, damaged in _flips(data, every_bit=True):
        got = sample.load(sample.journal, damaged) if state else sample.load(damaged)
        assert isinstance(got, StateError) or got == full, f"byte {index} bit {bit}: {got}"


@pytest.mark.parametrize("name", LINES)
def test_a_bit_flip_in_the_journal_is_refused_or_harmless(
    samples: dict[str, Sample], name: str
) -> None:
    _assert_flips_detected(samples[name], state=False)


@pytest.mark.parametrize("name", LINES)
def test_a_bit_flip_in_the_state_file_is_refused_or_harmless(
    samples: dict[str, Sample], name: str
) -> None:
    """Both samples start from an empty state, so their state files hold only what a
    journal is checked against (lineage, serial, the journal's run and acknowledged
    serial), and every flip of those is caught. The state file carries no checksum
    (plain JSON, to be diffed and committed): a flip inside a recorded purchase that
    keeps it valid JSON still changes it without an error (the README says so)."""
    _assert_flips_detected(samples[name], state=True)


@pytest.mark.parametrize("name", LINES)
def test_a_state_file_whose_serial_falls_inside_its_journal_is_refused(
    samples: dict[str, Sample], name: str
) -> None:
    """No run writes such a pair: a journal starts right after the serial its state file
    was marked at, and a compaction leaves a serial at or past its journal's last line.
    A reader that skips some lines and applies the rest has a mismatched pair."""
    sample = samples[name]
    marked = json.loads(sample.state)
    first = json.loads(sample.lines[0])["serial"]
    for serial in range(first, first + len(sample.lines) - 1):
        damaged = json.dumps({**marked, "serial": serial}, indent=2, sort_keys=True) + "\n"
        got = sample.load(sample.journal, damaged.encode())
        assert isinstance(got, StateError), f"state file at serial {serial}: {got}"


@pytest.mark.parametrize("name", LINES)
def test_a_journal_cut_inside_its_last_line_is_refused(
    samples: dict[str, Sample], name: str
) -> None:
    """The same bytes as a crash in the middle of writing that line, but the state file
    as the run left it records the line as acknowledged, so the cut is found."""
    sample = samples[name]
    for cut in range(sample.starts[-2], sample.starts[-1]):
        got = sample.load(sample.journal[:cut])
        assert isinstance(got, StateError), f"cut at byte {cut}: {got}"
        assert "was cut short" in str(got), str(got)
