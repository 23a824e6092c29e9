"""How a state file and its journal make one state (``reconciler.state.replay``).

A journal cut short, damaged or spliced from another run is refused by name, before
anything is planned from it; a torn last line (a crash while writing it) is ignored;
a journal of the previous format still replays.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.errors import StateError
from reconciler.model import CheckoutRecord, PendingOperation
from reconciler.state import JsonFileStateStore
from tests.support.cli import run
from tests.support.declarations import declare, purchase
from tests.support.paths import README
from tests.support.records import BASIC
from tests.support.states import journal
from tests.support.times import T0


def _run_kept_mid_way(path: Path, quantities: tuple[int, ...] = (4, 5)) -> tuple[bytes, bytes]:
    """The state file and journal of a run that made four acknowledged writes (a pending
    entry and its checkout per purchase), as a kill or a backup taken mid-run keeps them."""
    store = JsonFileStateStore(path)
    with store.lock("reconciler apply") as writer:
        for number, quantity in enumerate(quantities):
            op = PendingOperation(f"acme/{number}", BASIC, f"ord-{number}", quantity, T0)
            writer.add_pending(op)
            writer.record_checkout(
                op.address, BASIC, CheckoutRecord(op.external_order_id, quantity, T0)
            )
        kept = path.read_bytes(), journal(path).read_bytes()
    return kept


@pytest.fixture
def kept(file_store: JsonFileStateStore, state_path: Path) -> tuple[bytes, bytes]:
    return _run_kept_mid_way(state_path)


def _restore(path: Path, state: bytes, journal_bytes: bytes) -> JsonFileStateStore:
    path.write_bytes(state)
    journal(path).write_bytes(journal_bytes)
    return JsonFileStateStore(path)


def _refused(store: JsonFileStateStore, path: Path) -> str:
    """The error ``plan`` and a locked run give, the same for both; nothing is changed."""
    before = path.read_bytes(), journal(path).read_bytes()
    with pytest.raises(StateError) as caught:
        store.load()
    with pytest.raises(StateError) as locked, store.lock("reconciler apply"):
        pytest.fail("locked a damaged journal")
    assert str(locked.value) == str(caught.value)
    assert (path.read_bytes(), journal(path).read_bytes()) == before
    message = str(caught.value)
    assert message.startswith(f"state journal {journal(path)} "), message
    return message


def _lines(journal_bytes: bytes) -> list[bytes]:
    return [line + b"\n" for line in journal_bytes.split(b"\n")[:-1]]


def unmarked_state(state: bytes) -> bytes:
    data = json.loads(state)
    for key in ("acknowledgedSerial", "journal", "journalRun"):
        del data[key]
    return (json.dumps(data, sort_keys=True, indent=2) + "\n").encode()


def test_the_full_copy_of_a_run_kept_mid_way_loads_every_write(
    state_path: Path, kept: tuple[bytes, bytes]
) -> None:
    store = _restore(state_path, *kept)
    state = store.load()
    assert state.serial == 4
    assert {a: p.quantity for a, p in state.purchases.items()} == {"acme/0": 4, "acme/1": 5}
    assert json.loads(kept[0])["acknowledgedSerial"] == "0" * 19 + "4"
    # Updated in place, the marked file is still exactly what json.dumps would write.
    assert kept[0] == (json.dumps(json.loads(kept[0]), sort_keys=True, indent=2) + "\n").encode()


@pytest.mark.parametrize("lines_kept", [0, 1, 2, 3])
def test_a_journal_cut_at_a_line_boundary_is_refused(
    state_path: Path, kept: tuple[bytes, bytes], lines_kept: int
) -> None:
    state, whole = kept
    store = _restore(state_path, state, b"".join(_lines(whole)[:lines_kept]))
    lost = 4 - lines_kept
    assert _refused(store, state_path) == (
        f"state journal {journal(state_path)} ends at serial {lines_kept}, but state file "
        f"{state_path} records serial 4 as acknowledged: the journal was cut short (a partial "
        f"copy, upload or backup?) and lost {lost} acknowledged write{'s' if lost > 1 else ''}, "
        f"and planning without {'them' if lost > 1 else 'it'} could buy again. Put the "
        "complete journal back beside the state file. If it is lost for good, check the "
        'orders in Crayon Cloud-iQ, then delete the journal and the "journal" lines from '
        "the state file and record what was bought with `reconciler state import`."
    )


@pytest.mark.parametrize("line", [1, 2, 3, 4])
def test_a_journal_cut_in_the_middle_of_a_line_is_refused(
    state_path: Path, kept: tuple[bytes, bytes], line: int
) -> None:
    """The same bytes as a crash while writing that line, but the state file the run
    left says the line was acknowledged: the last line included."""
    state, whole = kept
    lines = _lines(whole)
    cut = b"".join(lines[: line - 1]) + lines[line - 1][: len(lines[line - 1]) // 2]
    store = _restore(state_path, state, cut)
    assert f"ends at serial {line - 1}, but state file {state_path} records serial 4" in _refused(
        store, state_path
    )


def test_plan_refuses_a_cut_journal_instead_of_buying_again(
    state_path: Path, kept: tuple[bytes, bytes], tmp_path: Path
) -> None:
    """Planning from a cut journal would buy the lost writes' seats again."""
    state, whole = kept
    _restore(state_path, state, b"".join(_lines(whole)[:1]))
    decl = declare(tmp_path / "decl", purchase("acme/0", 4), purchase("acme/1", 5))
    result = run("plan", str(decl), "--state", str(state_path))
    assert result.exit_code == 1
    assert f"error: state journal {journal(state_path)} ends at serial 1" in result.stderr
    assert "lost 3 acknowledged writes" in result.stderr


def test_a_bit_flip_in_a_middle_line_is_refused(
    state_path: Path, kept: tuple[bytes, bytes]
) -> None:
    state, whole = kept
    lines = _lines(whole)
    assert b'"quantity":4' in lines[1]
    # Still valid JSON and a valid entry: only the checksum tells.
    lines[1] = lines[1].replace(b'"quantity":4', b'"quantity":5')
    store = _restore(state_path, state, b"".join(lines))
    assert _refused(store, state_path) == (
        f"state journal {journal(state_path)} line 2 fails its checksum: the line was changed "
        "after it was written (a damaged copy or disk?), so none of its values can be trusted"
    )


def test_a_bit_flip_in_the_last_line_is_refused_not_dropped_as_torn(
    state_path: Path, kept: tuple[bytes, bytes]
) -> None:
    state, whole = kept
    lines = _lines(whole)
    lines[3] = lines[3].replace(b'"quantity":5', b'"quantity":7')
    store = _restore(state_path, state, b"".join(lines))
    assert "ends at serial 3, but state file" in _refused(store, state_path)


def test_a_line_spliced_from_another_run_is_refused(
    state_path: Path, kept: tuple[bytes, bytes], tmp_path: Path
) -> None:
    """Two runs from the same state (a restored backup): same lineage, same serials."""
    state, whole = kept
    other = tmp_path / "other" / state_path.name
    other.parent.mkdir()
    other.write_bytes(unmarked_state(state))
    other_state, other_whole = _run_kept_mid_way(other, quantities=(4, 9))
    lines, other_lines = _lines(whole), _lines(other_whole)
    assert other_lines[3] != lines[3]
    run = json.loads(state)["journalRun"]
    other_run = json.loads(other_state)["journalRun"]

    store = _restore(state_path, state, b"".join([*lines[:3], other_lines[3]]))
    assert _refused(store, state_path) == (
        f"state journal {journal(state_path)} line 4 was written by run {other_run}, line 1 by "
        f"run {run}: lines of two journals were put together"
    )
    # The other run's whole journal beside this state file.
    store = _restore(state_path, state, other_whole)
    assert _refused(store, state_path) == (
        f"state journal {journal(state_path)} was written by run {other_run}, but state file "
        f"{state_path} is marked for the journal of run {run}: the two files do not belong "
        "together (a journal from another run or copy); put the right pair together"
    )


@pytest.mark.parametrize(
    "tail",
    [
        pytest.param(b'{"crc":"0badf00d","address":"acme/2","lineage":', id="cut-mid-line"),
        pytest.param(b"\x00" * 64, id="allocated-never-written"),
        pytest.param(b'{"address":"acme/2"}\n', id="complete-but-not-checksummed"),
        pytest.param(b"{not json}\n", id="complete-but-unreadable"),
    ],
)
def test_a_torn_final_line_after_a_crash_still_loads(
    state_path: Path, kept: tuple[bytes, bytes], tail: bytes
) -> None:
    state, whole = kept
    store = _restore(state_path, state, whole + tail)
    assert store.load().serial == 4
    with store.lock("reconciler apply") as writer:
        writer.import_purchase("acme/new", BASIC, 1, T0)
    assert store.load().serial == 5
    assert not journal(state_path).exists()


def test_a_journal_of_the_previous_version_still_replays(
    state_path: Path, kept: tuple[bytes, bytes]
) -> None:
    """Lines without a run and a checksum, beside a file marked only with "journal"."""
    state, whole = kept
    expected = _restore(state_path, state, whole).load()
    legacy_lines = []
    for line in _lines(whole):
        entry = json.loads(line)
        del entry["crc"], entry["run"]
        legacy_lines.append(json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n")
    legacy_state = json.loads(state)
    del legacy_state["acknowledgedSerial"], legacy_state["journalRun"]
    legacy_text = (json.dumps(legacy_state, sort_keys=True, indent=2) + "\n").encode()
    legacy_journal = "".join(legacy_lines).encode()
    store = _restore(state_path, legacy_text, legacy_journal)
    assert store.load() == expected
    # One line of each kind is two journals put together.
    store = _restore(
        state_path, legacy_text, legacy_journal[: len(legacy_lines[0])] + _lines(whole)[1]
    )
    assert "line 2 was written by run " in _refused(store, state_path)
    # A file marked the old way beside a checksummed journal does not belong to it.
    store = _restore(state_path, legacy_text, whole)
    assert "was marked by a reconciler without journal checksums" in _refused(store, state_path)
    # The next locked run compacts the old pair, then writes the new way.
    store = _restore(state_path, legacy_text, legacy_journal)
    with store.lock("reconciler apply") as writer:
        writer.import_purchase("acme/new", BASIC, 1, T0)
    assert store.load().serial == 5
    assert not journal(state_path).exists()


def test_the_readme_says_what_the_journal_checks_cannot_detect() -> None:
    readme = README.read_text(encoding="utf-8")
    section = readme[readme.index("What the state's checks cannot detect") :]
    assert "a journal cut short together with a state file copied before" in section
    assert "the state file itself carries no checksum" in section
