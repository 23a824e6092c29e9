"""How a state file and its journal make one state, with every check that they belong together.

The file store reads both files; this module decides what they say: the state
file's state with the journal's acknowledged writes applied, or a ``StateError``
when the pair is mismatched, cut short or damaged (a journal missing, lines lost,
doubled, swapped or from another run, a journal cut before what the state file
says was acknowledged). A torn last line is a write a crash cut short and is
ignored. No I/O.
"""

from __future__ import annotations

from reconciler.errors import StateError
from reconciler.model import State
from reconciler.state import jsonformat
from reconciler.state.jsonformat import JournalMark
from reconciler.state.rules import Tables
from reconciler.state.writes import Write


def replay(
    base: State,
    mark: JournalMark | None,
    journal: bytes | None,
    *,
    state_file: str,
    journal_file: str,
) -> Tables:
    """The state file's state with its journal's writes applied, every check made."""
    name = f"state journal {journal_file}"
    tables = Tables(base)
    if journal is None:
        if mark is None:
            return tables
        raise _missing_journal(state_file, journal_file)
    parsed = jsonformat.parse_journal(journal, name)
    entries = parsed.entries
    _refuse_another_state(entries, tables, name, state_file)
    _refuse_another_run(parsed, mark, name, state_file)
    checked = mark is not None and mark.run is not None
    if entries and entries[0][1].serial <= base.serial:
        _refuse_partly_folded(entries, base, name, state_file, checked=checked)
        return tables  # already in the JSON file: a run died right after compacting
    for line, entry in entries:
        if entry.serial != tables.serial + 1:
            raise StateError(
                f"{name} line {line} has serial {entry.serial} but serial "
                f"{tables.serial + 1} was expected; the journal does not continue state "
                f"file {state_file}"
            )
        tables.apply(entry)
    acknowledged = mark.acknowledged if mark is not None and checked else 0
    if tables.serial < acknowledged:
        raise _cut_short(tables.serial, acknowledged, name, state_file)
    return tables


def _missing_journal(state_file: str, journal_file: str) -> StateError:
    return StateError(
        f"state file {state_file} was being written by a run that did not finish, "
        f"and its journal {journal_file} is missing: the state file alone "
        "lacks that run's last purchases and pending checkouts, and planning from it "
        "could buy them again. Put the journal file back beside the state file (keep "
        "both when a pipeline saves the state). If it is lost for good, check the "
        'orders in Crayon Cloud-iQ, then delete the "journal" lines from the state '
        "file and record what was bought with `reconciler state import`."
    )


def _refuse_another_state(
    entries: list[tuple[int, Write]], tables: Tables, name: str, state_file: str
) -> None:
    for line, entry in entries:
        if tables.lineage and entry.lineage != tables.lineage:
            raise StateError(
                f"{name} line {line} belongs to another state (lineage {entry.lineage}; "
                f"state file {state_file} has lineage {tables.lineage}); move one of "
                "them away"
            )


def _refuse_another_run(
    parsed: jsonformat.ParsedJournal, mark: JournalMark | None, name: str, state_file: str
) -> None:
    marked_run = mark.run if mark is not None else None
    if marked_run is not None and parsed.entries and parsed.run != marked_run:
        written_by = f"run {parsed.run}" if parsed.run else "a reconciler without checksums"
        raise StateError(
            f"{name} was written by {written_by}, but state file {state_file} is "
            f"marked for the journal of run {marked_run}: the two files do not belong "
            "together (a journal from another run or copy); put the right pair together"
        )
    if mark is not None and mark.run is None and parsed.run is not None:
        raise StateError(
            f"{name} has checksummed lines, but state file {state_file} was marked by "
            "a reconciler without journal checksums: the two files do not belong together"
        )


def _refuse_partly_folded(
    entries: list[tuple[int, Write]], base: State, name: str, state_file: str, *, checked: bool
) -> None:
    """A journal whose first write the state file holds must be folded into it whole,
    and never one the file is marked as being written through."""
    last_line, last = entries[-1]
    if last.serial > base.serial:
        raise StateError(
            f"{name} line {entries[0][0]} has serial {entries[0][1].serial}, which state "
            f"file {state_file} (serial {base.serial}) already holds, yet line "
            f"{last_line} goes on to serial {last.serial}: a journal either continues "
            "its state file or was folded into it whole, so the two files do not "
            "belong together (a damaged or mismatched copy)"
        )
    if checked:
        raise StateError(
            f"{name} ends at serial {last.serial}, which state file {state_file} "
            f"(serial {base.serial}) already holds, yet the file is marked as being "
            "written through it: the two files do not belong together"
        )


def _cut_short(serial: int, acknowledged: int, name: str, state_file: str) -> StateError:
    lost = acknowledged - serial
    return StateError(
        f"{name} ends at serial {serial}, but state file {state_file} "
        f"records serial {acknowledged} as acknowledged: the journal was cut short "
        f"(a partial copy, upload or backup?) and lost {lost} acknowledged "
        f"write{'s' if lost != 1 else ''}, and planning without "
        f"{'them' if lost != 1 else 'it'} could buy again. Put the complete journal "
        "back beside the state file. If it is lost for good, check the orders in "
        'Crayon Cloud-iQ, then delete the journal and the "journal" lines from the '
        "state file and record what was bought with `reconciler state import`."
    )
