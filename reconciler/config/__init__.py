"""Declarations: YAML files -> located problems or ``Declarations``.

Reads files and nothing else: no state, no network. Every problem of every file
is collected and raised together as one ``ConfigError``; each names the file,
line and column of the offending value (of the key, for an unknown key) and its
JSON path, for example::

    config/acme.yaml:12:7: purchases[1].quantity: -3 is less than the minimum of 1

The way of one file: ``files`` reads it (regular files only, size-limited),
``tree`` composes and builds its values with their positions, ``schema_errors``
locates and phrases what is wrong, ``build`` turns a file without problems into
purchases. This module strings them together and must not grow rules of its own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from reconciler.config.build import (
    Entry,
    MoveEntry,
    duplicate_names,
    entries,
    entry_problems,
    move_problems,
    moves,
    purchases,
)
from reconciler.config.compose import FLOW_OPENERS_GATE, MAX_DEPTH, MAX_EXPANDED_NODES
from reconciler.config.files import MAX_FILE_BYTES, SUFFIXES, discover, read_text
from reconciler.config.schema_errors import (
    INTEGER_FIELDS,
    REQUIRED_AFTER_DEFAULTS,
    SchemaErrors,
)
from reconciler.config.tree import json_path, read_tree
from reconciler.errors import ConfigError, ConfigProblem
from reconciler.model import Adopt, Declarations, Purchase, Removal

__all__ = [
    "FLOW_OPENERS_GATE",
    "INTEGER_FIELDS",
    "MAX_DEPTH",
    "MAX_EXPANDED_NODES",
    "MAX_FILE_BYTES",
    "REQUIRED_AFTER_DEFAULTS",
    "SUFFIXES",
    "discover",
    "json_path",
    "load",
    "load_text",
]


@dataclass
class _Parsed:
    problems: list[ConfigProblem] = field(default_factory=list)
    purchases: list[Purchase] = field(default_factory=list)
    #: The index of each purchase in its file's list, in the order of ``purchases``.
    indexes: list[int] = field(default_factory=list)
    moves: list[MoveEntry] = field(default_factory=list)
    #: ``import:`` and ``removed:`` entries.
    entries: list[Entry] = field(default_factory=list)


def load(path: str | os.PathLike[str], *more: str | os.PathLike[str]) -> Declarations:
    """Read and check every declarations file at ``path`` (and at each of ``more``)
    as one set: a name declared under two of the paths is a duplicate.

    Raises ``ConfigError`` with all problems of all files; nothing is returned
    unless every file is valid.
    """
    files = discover(path)
    if more:
        # A file named twice, or a file inside a directory also named, is read once.
        seen = {os.path.realpath(f) for f in files}
        for other in more:
            for file in discover(other):
                if os.path.realpath(file) not in seen:
                    seen.add(os.path.realpath(file))
                    files.append(file)
    problems: list[ConfigProblem] = []
    whole = _Parsed()
    for file in files:
        parsed = _parse(str(file), read_text(file, problems))
        problems.extend(parsed.problems)
        whole.purchases.extend(parsed.purchases)
        whole.indexes.extend(parsed.indexes)
        whole.moves.extend(parsed.moves)
        whole.entries.extend(parsed.entries)
    whole.problems = problems
    return _declarations(whole, [str(f) for f in files])


def load_text(text: str, path: str = "<string>") -> Declarations:
    """Check one document given as text (tests and tools); same rules as ``load``."""
    return _declarations(_parse(path, text), [path])


def _parse(path: str, text: str | None) -> _Parsed:
    """One file's problems, or, when it has none, its purchases."""
    if text is None:  # unreadable: the reason is already among the problems
        return _Parsed()
    tree = read_tree(path, text)
    if tree.document is None:
        return _Parsed(tree.problems)
    SchemaErrors(tree).check(tree.document)
    if tree.problems:
        return _Parsed(tree.problems)
    built, indexes = purchases(tree, tree.document)
    document = tree.document
    return _Parsed(tree.problems, built, indexes, moves(tree, document), entries(tree, document))


def _declarations(parsed: _Parsed, files: list[str]) -> Declarations:
    """The files' purchases, moves, imports and removals, or ConfigError with every
    problem (duplicate names and inconsistent entries included)."""
    found = parsed.purchases
    problems = parsed.problems + duplicate_names(found, parsed.indexes)
    if not problems:
        # Only now is every declared name known: a file with problems builds none.
        declared = {p.address for p in found}
        problems = move_problems(parsed.moves, declared)
        problems += entry_problems(parsed.entries, declared, parsed.moves)
    if problems:
        raise ConfigError(sorted(problems, key=lambda p: (p.path, p.line, p.column, p.message)))
    ordered = sorted(found, key=lambda p: p.address)
    moved = tuple(sorted((e.move for e in parsed.moves), key=lambda m: (m.source, m.target)))
    adoptions = [e.record for e in parsed.entries if isinstance(e.record, Adopt)]
    removals = [e.record for e in parsed.entries if isinstance(e.record, Removal)]
    return Declarations(
        purchases=tuple(ordered),
        files=tuple(files),
        moves=moved,
        adoptions=tuple(sorted(adoptions, key=lambda a: (a.target, a.subscriptions))),
        removals=tuple(sorted(removals, key=lambda r: r.address)),
    )
