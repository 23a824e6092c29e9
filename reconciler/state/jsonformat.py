"""The state file and its journal: the documents the file store reads and writes.

The state file is one document (version, lineage, serial, the purchases and the
pending entries, and while a run writes the journal, the mark naming it); the
journal is one checksummed line per write. Reading checks every value
(``jsonrecords`` reads the records, ``jsonvalues`` the values) and refuses a
journal that does not belong with its file; writing gives a journal line byte for
byte as ``json.dumps(..., sort_keys=True)`` would.
This module performs no I/O: it turns text into records and records into text.
"""

from __future__ import annotations

import json
import re
import uuid
import zlib
from dataclasses import dataclass
from typing import Any

from reconciler.errors import StateError
from reconciler.model import STATE_VERSION, State
from reconciler.state.jsonrecords import (
    entry_line,
    parse_entry,
    parse_parts,
)
from reconciler.state.jsonvalues import (
    Invalid,
    TooLarge,
    expect_object,
    expect_string,
    parse_json,
    show,
)
from reconciler.state.writes import Write

__all__ = [
    "ACKNOWLEDGED_KEY",
    "ACKNOWLEDGED_OFFSET",
    "JOURNAL_KEY",
    "JOURNAL_RUN_KEY",
    "JournalMark",
    "ParsedJournal",
    "acknowledged_text",
    "journal_line",
    "new_run_id",
    "parse_document",
    "parse_journal",
    "parse_state_file",
]

_DOCUMENT_KEYS = ("version", "lineage", "serial", "purchases", "pending")
#: Present only while a run writes to the journal (or after one died doing so).
JOURNAL_KEY = "journal"
#: Beside ``journal`` (written by this version): the id of the run that writes the
#: journal, which every line carries, and the serial of its last acknowledged line,
#: a fixed-width string updated in place after each line's fsync (see ``JournalMark``).
JOURNAL_RUN_KEY = "journalRun"
ACKNOWLEDGED_KEY = "acknowledgedSerial"
_ACKNOWLEDGED_WIDTH = 20  # digits: any serial up to 10**20 - 1
_RUN = re.compile(r"[0-9a-f]{16}")
#: A checksummed journal line starts ``{"crc":"<8 hex>",`` and the checksum is the
#: CRC-32 of the line with that member removed: ``{`` + the rest.
_CRC_PREFIX = b'{"crc":"'
_CRC_END = len(_CRC_PREFIX) + 8


@dataclass(frozen=True)
class JournalMark:
    """What a state file says about the journal beside it (its ``"journal"`` keys).

    ``run`` is the id of the run writing the journal; each of its lines carries it
    and a checksum. ``acknowledged`` is the serial of the run's last acknowledged
    line: written when the file is marked (the state's own serial) and overwritten
    in place, same width, after each line's fsync, so a journal that lost lines the
    file says were acknowledged (a cut copy) is refused. ``run`` is None for a file
    marked by a reconciler that wrote neither (its journal lines carry no checksum).
    """

    journal: str
    run: str | None = None
    acknowledged: int = 0


#: Where the acknowledged serial's digits start in a marked state file (they are
#: the first key, so a long journal name cannot push them out of the first sector).
ACKNOWLEDGED_OFFSET = len(f'{{\n  "{ACKNOWLEDGED_KEY}": "')


def acknowledged_text(serial: int) -> str:
    text = f"{serial:0{_ACKNOWLEDGED_WIDTH}d}"
    if len(text) != _ACKNOWLEDGED_WIDTH:
        raise ValueError(f"serial {serial} does not fit in {_ACKNOWLEDGED_WIDTH} digits")
    return text


def new_run_id() -> str:
    return uuid.uuid4().hex[:16]


def _parse_mark(data: dict[str, Any], serial: int) -> JournalMark | None:
    if JOURNAL_KEY not in data:
        for key in (JOURNAL_RUN_KEY, ACKNOWLEDGED_KEY):
            if key in data:
                raise Invalid(f"{key!r} is only allowed beside {JOURNAL_KEY!r}")
        return None
    journal = expect_string(data[JOURNAL_KEY], JOURNAL_KEY)
    if JOURNAL_RUN_KEY not in data and ACKNOWLEDGED_KEY not in data:
        return JournalMark(journal)  # marked by a reconciler before journal checksums
    for key in (JOURNAL_RUN_KEY, ACKNOWLEDGED_KEY):
        if key not in data:
            raise Invalid(f"missing {key!r} beside {JOURNAL_RUN_KEY!r}")
    run = data[JOURNAL_RUN_KEY]
    if type(run) is not str or not _RUN.fullmatch(run):
        raise Invalid(f"expected 16 hexadecimal digits, got {show(run)}", (JOURNAL_RUN_KEY,))
    text = data[ACKNOWLEDGED_KEY]
    if (
        type(text) is not str
        or len(text) != _ACKNOWLEDGED_WIDTH
        or not text.isascii()
        or not text.isdigit()
    ):
        raise Invalid(
            f"expected {_ACKNOWLEDGED_WIDTH} decimal digits, got {show(text)}", (ACKNOWLEDGED_KEY,)
        )
    acknowledged = int(text)
    if acknowledged < serial:
        raise Invalid(
            f"serial {acknowledged} is below the file's own serial {serial}", (ACKNOWLEDGED_KEY,)
        )
    return JournalMark(journal, run, acknowledged)


def parse_document(data: dict[str, Any]) -> State:
    """Everything but the version, which the caller checked first."""
    expect_object(
        data, (*_DOCUMENT_KEYS, JOURNAL_KEY, JOURNAL_RUN_KEY, ACKNOWLEDGED_KEY), _DOCUMENT_KEYS
    )
    return parse_parts(data["lineage"], data["serial"], data["purchases"], data["pending"])


def journal_line(write: Write, run: str) -> bytes:
    """The file journal's line of one write, with its newline: the entry, the id of the
    run that writes it and, first, the CRC-32 of the rest, so a damaged or spliced line
    is found. Raises like ``entry_line``."""
    if not _RUN.fullmatch(run):
        raise ValueError(f"not a run id: {run!r}")
    entry = entry_line(write)
    # "run" sorts right before "serial", the one top-level key no nested object has
    # (and a bare quote cannot occur inside a JSON string): the result is what
    # json.dumps(sort_keys=True) gives, without parsing the line again.
    at = entry.index(',"serial":')
    body = f'{entry[:at]},"run":"{run}"{entry[at:]}'.encode()
    return b'%s%08x",%s\n' % (_CRC_PREFIX, zlib.crc32(body), body[1:])


def _checksum_holds(line: bytes) -> bool:
    if not line.startswith(_CRC_PREFIX) or line[_CRC_END : _CRC_END + 2] != b'",':
        return False
    claimed = line[len(_CRC_PREFIX) : _CRC_END]
    return claimed == b"%08x" % zlib.crc32(b"{" + line[_CRC_END + 2 :])


def parse_state_file(raw: bytes, name: str) -> tuple[State, JournalMark | None]:
    """A state file's bytes as a State, and what it says of a journal going with it.

    ``name`` names the file in messages; every problem is a ``StateError``.
    """
    if not raw.strip():
        raise StateError(f"{name} is empty; it is not a state this reconciler wrote")
    try:
        data = parse_json(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise StateError(f"{name} is not valid UTF-8 (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise StateError(
            f"{name} is not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}"
        ) from None
    except Invalid as exc:
        what = "is invalid" if isinstance(exc, TooLarge) else "is not valid JSON"
        raise StateError(f"{name} {what}: {exc}") from None
    if not isinstance(data, dict):
        raise StateError(f"{name} is invalid: expected an object, got {show(data)}")
    # The version decides how to read the rest, so it is checked before anything else.
    if "version" not in data:
        raise StateError(f"{name} is invalid: it has no version")
    version = data["version"]
    if type(version) is not int or version < 1:
        raise StateError(f"{name} is invalid: version: expected 1, got {show(version)}")
    if version > STATE_VERSION:
        raise StateError(
            f"{name} was written by a newer reconciler (version {version}); upgrade to read it"
        )
    try:
        state = parse_document(data)
        return state, _parse_mark(data, state.serial)
    except Invalid as exc:
        raise StateError(f"{name} is invalid: {exc}") from None


@dataclass(frozen=True)
class ParsedJournal:
    """A journal's writes, each with its line number, and the run that wrote them
    (None for lines without a run and checksum, written before journal checksums)."""

    entries: list[tuple[int, Write]]
    run: str | None


def parse_journal(raw: bytes, name: str) -> ParsedJournal:
    """A journal's bytes as its writes, each with its line number.

    An unterminated last line, or a last line that is not valid JSON or fails its
    checksum, is a write a crash cut short (never acknowledged) and is ignored;
    whether acknowledged lines went missing with it is for the caller to check
    against the state file's mark. Anything else wrong is a ``StateError`` naming
    the line: a line that fails its checksum, a line without one (or from another
    run) in a journal whose first line has one.
    """
    lines = raw.split(b"\n")
    # Every write is one line ending in a newline and is acknowledged only after
    # its fsync, so an unterminated last line is a write a crash cut short.
    tail = lines.pop()
    entries: list[tuple[int, Write]] = []
    run: str | None = None
    for number, line in enumerate(lines, 1):
        last = number == len(lines) and not tail
        try:
            data = parse_json(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, Invalid) as exc:
            if last:
                break  # torn last line
            raise StateError(f"{name} line {number} is not valid JSON: {exc}") from None
        checksummed = isinstance(data, dict) and "crc" in data
        if last and (checksummed or run is not None) and not _checksum_holds(line):
            break  # torn last line (what a crash left happens to parse as JSON)
        line_run: str | None = None
        if checksummed:
            del data["crc"]
            line_run = data.pop("run", None)
        try:
            write = parse_entry(data)
        except Invalid as exc:
            raise StateError(f"{name} line {number} is invalid: {exc}") from None
        if checksummed and not _checksum_holds(line):
            raise StateError(
                f"{name} line {number} fails its checksum: the line was changed after it "
                "was written (a damaged copy or disk?), so none of its values can be trusted"
            )
        if number == 1:
            run = line_run if checksummed else None
            if checksummed and (type(run) is not str or not _RUN.fullmatch(run)):
                raise StateError(f"{name} line 1 is invalid: run: expected 16 hex digits")
        elif line_run != run:
            raise StateError(
                f"{name} line {number} was written by "
                + (f"run {line_run}" if line_run else "a reconciler without journal checksums")
                + (f", line 1 by run {run}" if run else ", line 1 without a checksum")
                + ": lines of two journals were put together"
            )
        entries.append((number, write))
    return ParsedJournal(entries, run)
