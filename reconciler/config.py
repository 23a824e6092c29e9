"""Declarations: YAML files -> located problems or ``Declarations``.

Reads files and nothing else: no state, no network. Every problem of every file
is collected and raised together as one ``ConfigError``; each names the file,
line and column of the offending value (of the key, for an unknown key) and its
JSON path, for example::

    config/acme.yaml:12:7: purchases[1].quantity: -3 is less than the minimum of 1

YAML is composed into a node tree (which keeps positions) and built into plain
values here rather than by PyYAML's constructor, so that duplicate keys are
refused and alias expansion is measured before it happens.
"""

from __future__ import annotations

import datetime
import difflib
import functools
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import yaml

from reconciler import resources, schemacheck
from reconciler.errors import ConfigError, ConfigProblem, ReconcilerError
from reconciler.model import Declarations, Identity, Location, Purchase

if TYPE_CHECKING:
    import jsonschema

SUFFIXES = (".yaml", ".yml")
#: Nodes one file may expand to through aliases; a real declarations file is far below.
MAX_EXPANDED_NODES = 200_000
MAX_DEPTH = 64
#: The fields a purchase must end up with, from itself or the file's defaults.
REQUIRED_AFTER_DEFAULTS = (
    "customerTenantId",
    "productId",
    "skuId",
    "billingCycle",
    "termDuration",
)
#: Integer fields: a YAML float such as 20.0 passes JSON Schema's "integer" but is refused.
INTEGER_FIELDS = ("quantity", "customerTenantId", "productVariantId", "invoiceProfileId")

_Path = tuple[str | int, ...]

try:  # libyaml makes parsing several times faster; PyYAML works without it.
    _Loader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment,unused-ignore]
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _Loader = yaml.SafeLoader


#: More '[' and '{' than this, or a chain of block indicators (``- - - -``) on a line, and
#: a file's parser events are walked, which takes no recursion, before it is composed:
#: libyaml's composer recurses in C per nesting level (about 30,000 levels overflow the
#: stack) and slows down quadratically with depth; PyYAML's own composer hits Python's
#: recursion limit much earlier. Below this, composing is safe and ``_build`` reports
#: nesting deeper than MAX_DEPTH like any other problem.
FLOW_OPENERS_GATE = 1_000 if _Loader is not yaml.SafeLoader else 200


def json_path(path: Sequence[str | int]) -> str:
    """``('purchases', 1, 'quantity')`` -> ``purchases[1].quantity``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def discover(path: str | os.PathLike[str]) -> list[Path]:
    """The declarations files at ``path``: the file itself, or every YAML file below
    a directory, recursively, sorted, skipping hidden files and folders."""
    root = Path(path)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise ReconcilerError(f"no such file or directory: {root}")
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(
            Path(dirpath) / name
            for name in filenames
            if name.endswith(SUFFIXES) and not name.startswith(".")
        )
    return sorted(found)


def load(path: str | os.PathLike[str]) -> Declarations:
    """Read and check every declarations file at ``path``.

    Raises ``ConfigError`` with all problems of all files; nothing is returned
    unless every file is valid.
    """
    files = discover(path)
    problems: list[ConfigProblem] = []
    purchases: list[Purchase] = []
    indexes: list[int] = []
    for file in files:
        parsed = _FileParser(str(file)).parse(_read_text(file, problems))
        problems.extend(parsed.problems)
        purchases.extend(parsed.purchases)
        indexes.extend(parsed.indexes)
    return _declarations(problems, purchases, indexes, [str(f) for f in files])


def load_text(text: str, path: str = "<string>") -> Declarations:
    """Check one document given as text (tests and tools); same rules as ``load``."""
    parsed = _FileParser(path).parse(text)
    return _declarations(parsed.problems, parsed.purchases, parsed.indexes, [path])


def _declarations(
    problems: list[ConfigProblem], purchases: list[Purchase], indexes: list[int], files: list[str]
) -> Declarations:
    """The files' purchases, or ConfigError with every problem (duplicate names included)."""
    problems = problems + _duplicate_names(purchases, indexes)
    if problems:
        raise ConfigError(sorted(problems, key=lambda p: (p.path, p.line, p.column, p.message)))
    ordered = sorted(purchases, key=lambda p: p.address)
    return Declarations(purchases=tuple(ordered), files=tuple(files))


def _read_text(file: Path, problems: list[ConfigProblem]) -> str | None:
    try:
        data = file.read_bytes()
    except OSError as exc:
        problems.append(ConfigProblem(str(file), 1, 1, "", f"cannot read file: {exc.strerror}"))
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        problems.append(
            ConfigProblem(
                str(file),
                line,
                column,
                "",
                f"file is not valid UTF-8 (byte 0x{data[exc.start]:02x}); save it as UTF-8",
            )
        )
        return None


def _duplicate_names(purchases: Sequence[Purchase], indexes: Sequence[int]) -> list[ConfigProblem]:
    """A problem for each purchase whose name an earlier one already has.

    ``indexes[i]`` is the index of ``purchases[i]`` in its file's list of purchases.
    """
    first: dict[str, Purchase] = {}
    problems = []
    for purchase, index in zip(purchases, indexes, strict=True):
        seen = first.setdefault(purchase.address, purchase)
        if seen is purchase or seen.location is None or purchase.location is None:
            continue
        where = purchase.location
        problems.append(
            ConfigProblem(
                where.path,
                where.line,
                where.column,
                f"purchases[{index}].name",
                f"duplicate name {purchase.address!r}: declared in {where.path}:{where.line} "
                f"and in {seen.location.path}:{seen.location.line}",
            )
        )
    return problems


_SCALAR = yaml.constructor.SafeConstructor()
_STANDARD_TAG = "tag:yaml.org,2002:"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"
_SCALAR_NODE = yaml.ScalarNode
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MAP_TAG = "tag:yaml.org,2002:map"
_FLOAT_TAG = "tag:yaml.org,2002:float"
#: Scalar tags built into values, with the word for the kind of value each stands for.
_SCALAR_KINDS = {
    "tag:yaml.org,2002:null": "null",
    "tag:yaml.org,2002:bool": "boolean",
    "tag:yaml.org,2002:int": "integer",
    "tag:yaml.org,2002:float": "number",
    "tag:yaml.org,2002:timestamp": "date",
    "tag:yaml.org,2002:binary": "base64 binary value",
}
_SCALAR_CONSTRUCTORS = {tag: _SCALAR.yaml_constructors[tag] for tag in _SCALAR_KINDS}
#: A block sequence or explicit key nested on the same line four times: ``- - - -``.
#: Two patterns, as each starts with a literal character, which ``re`` finds fast.
_BLOCK_CHAIN = re.compile(r"-[ \t]+[-?][ \t]+[-?][ \t]+[-?]\s")
_KEY_CHAIN = re.compile(r"\?[ \t]+[-?][ \t]+[-?][ \t]+[-?]\s")
#: A node that starts with an explicit tag (after an optional anchor).
_EXPLICIT_TAG = re.compile(r"(?:&\S+\s+)?!")
_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")


@dataclass
class _Parsed:
    problems: list[ConfigProblem] = field(default_factory=list)
    purchases: list[Purchase] = field(default_factory=list)
    #: The index of each purchase in its file's list, in the order of ``purchases``.
    indexes: list[int] = field(default_factory=list)


class _Where(Protocol):
    """A position in the text: ``yaml.Mark`` and libyaml's marks both have one."""

    line: int
    column: int


class _TooDeepError(Exception):
    def __init__(self, node: yaml.Node) -> None:
        self.node = node


class _FileParser:
    """Turns one file's text into purchases, collecting located problems."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.result = _Parsed()
        self.root: yaml.Node | None = None
        self.text = ""
        #: Paths whose value could not be built and stands as None: the schema's
        #: verdicts on them (or, for ``too_deep``, on what encloses them) are noise.
        self.placeholders: set[_Path] = set()
        self.too_deep: set[_Path] = set()
        #: Mappings with a '<<' that is not a mapping: which keys they lack is unknown.
        self.bad_merges: set[_Path] = set()
        #: Where floats were built, for ``_whole_numbers``.
        self.floats: list[tuple[_Path, float]] = []
        #: The '<<' key nodes ``_report_once`` reported.
        self.reported: set[int] = set()

    def parse(self, text: str | None) -> _Parsed:
        if text is None:
            return self.result
        self.text = text
        root = self._compose(text, may_alias="*" in text)
        if root is None:
            return self.result
        self.root = root
        document = self._build(root, (), 0)
        if not isinstance(document, dict):  # a tag we do not support on the whole file
            return self.result
        self._check_schema(document)
        self._check_purchases(document)
        return self.result

    def problem(self, mark: _Where | None, path: _Path, message: str) -> None:
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        self.result.problems.append(
            ConfigProblem(self.path, line, column, json_path(path), message)
        )

    def _compose(self, text: str, *, may_alias: bool) -> yaml.Node | None:
        if _may_nest_deeply(text) and self._too_deep_events(text):
            return None
        try:
            root = yaml.compose(text, Loader=_Loader)
        except RecursionError:  # pragma: no cover - PyYAML's own composer, deep in blocks
            self.problem(None, (), f"nesting is deeper than {MAX_DEPTH} levels")
            return None
        except yaml.reader.ReaderError as exc:
            self._reader_error(text, exc)
            return None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
            detail = " ".join(
                str(part)
                for part in (getattr(exc, "context", None), getattr(exc, "problem", None))
                if part
            )
            self.problem(mark, (), f"YAML syntax error: {detail or exc}")
            return None
        if root is None:
            self.problem(None, (), "file is empty; expected a mapping with 'version: 1'")
            return None
        if not isinstance(root, yaml.MappingNode):
            self.problem(
                root.start_mark,
                (),
                f"expected a mapping with 'version: 1' at the top level, found a {_kind(root)}",
            )
            return None
        if not may_alias:  # no '*' in the text: no alias, nothing can expand
            return root
        try:
            size = _expanded_size(root)
        except _TooDeepError as exc:
            self.problem(
                exc.node.start_mark,
                (),
                f"nesting is deeper than {MAX_DEPTH} levels (or an alias refers to itself)",
            )
            return None
        if size > MAX_EXPANDED_NODES:
            self.problem(
                root.start_mark,
                (),
                f"aliases expand this document to {size:,} values, more than the "
                f"{MAX_EXPANDED_NODES:,} allowed; refusing to expand it",
            )
            return None
        return root

    def _too_deep_events(self, text: str) -> bool:
        """Whether the text nests deeper than MAX_DEPTH, reported at the first such value.

        Walks the parser's events, which libyaml produces without recursing, and stops
        at the first collection too deep, before the quadratic part of a deep parse.
        A syntax error ends the walk: composing reports it, as deep as the walk got.
        """
        # One frame per open collection: [is a mapping, items seen, last key, path part].
        frames: list[list[Any]] = []
        try:
            for event in yaml.parse(text, Loader=_Loader):
                if isinstance(event, yaml.CollectionEndEvent):
                    frames.pop()
                    continue
                if not isinstance(event, yaml.NodeEvent):
                    continue
                part: str | int | None = None
                if frames:
                    top = frames[-1]
                    if not top[0]:
                        part = top[1]
                    elif top[1] % 2 == 0:  # a key
                        top[2] = event.value if isinstance(event, yaml.ScalarEvent) else None
                    else:
                        part = top[2]
                    top[1] += 1
                if isinstance(event, yaml.CollectionStartEvent):
                    if len(frames) >= MAX_DEPTH:
                        parts = [frame[3] for frame in frames] + [part]
                        path = tuple(p for p in parts if p is not None)
                        self.problem(
                            event.start_mark, path, f"nesting is deeper than {MAX_DEPTH} levels"
                        )
                        return True
                    frames.append([isinstance(event, yaml.MappingStartEvent), 0, None, part])
        except yaml.YAMLError:
            return False
        return False

    def _reader_error(self, text: str, exc: yaml.reader.ReaderError) -> None:
        """A character YAML refuses, at its line and column."""
        position = exc.position
        if exc.encoding != "unicode":  # libyaml counts bytes of the UTF-8 text
            position = len(text.encode("utf-8")[:position].decode("utf-8", "ignore"))
        before = text[:position]
        breaks = list(_LINE_BREAK.finditer(before))
        line_start = breaks[-1].end() if breaks else 0
        mark = yaml.Mark(self.path, position, len(breaks), position - line_start, None, 0)
        if isinstance(exc.character, bytes):
            what = f"byte #x{exc.character[0]:02x}"
        else:
            what = f"character #x{exc.character:04x}"
        self.problem(mark, (), f"YAML syntax error: unacceptable {what}: {exc.reason}")

    def _build(self, node: yaml.Node, path: _Path, depth: int) -> Any:
        """Plain values from the node tree; problems are recorded with their path."""
        if isinstance(node, yaml.ScalarNode):
            if node.tag == _STR_TAG:
                return node.value
            constructor = _SCALAR_CONSTRUCTORS.get(node.tag)
            if constructor is None:
                return self._placeholder(node, path, f"unsupported YAML tag {_short_tag(node.tag)}")
            try:
                value = constructor(_SCALAR, node)
            except Exception:  # any value the constructor refuses, whatever it raises
                return self._placeholder(node, path, self._unconstructable(node, path))
            if node.tag == _FLOAT_TAG:
                self.floats.append((path, value))
            return value
        if depth >= MAX_DEPTH:
            self.too_deep.add(path)
            return self._placeholder(node, path, f"nesting is deeper than {MAX_DEPTH} levels")
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _SEQ_TAG:
                return self._placeholder(node, path, f"unsupported YAML tag {_short_tag(node.tag)}")
            return [self._build(child, (*path, i), depth + 1) for i, child in enumerate(node.value)]
        assert isinstance(node, yaml.MappingNode)
        if node.tag != _MAP_TAG:
            return self._placeholder(node, path, f"unsupported YAML tag {_short_tag(node.tag)}")
        built: dict[str, Any] = {}
        has_merge = False
        # Plain string keys and values, by far the most common nodes, are read inline:
        # this loop runs for every mapping of every file.
        for key_node, value_node in node.value:
            if type(key_node) is _SCALAR_NODE and key_node.tag == _STR_TAG:
                key = key_node.value
            elif key_node.tag == _MERGE_TAG:
                has_merge = True
                continue
            else:
                key = self._key(key_node, path)
                if key is None:
                    continue
            if key in built:
                self.problem(
                    key_node.start_mark,
                    (*path, key),
                    f"duplicate key {key!r} (first at line {_first_line(node, key)})",
                )
                continue
            if type(value_node) is _SCALAR_NODE and value_node.tag == _STR_TAG:
                built[key] = value_node.value
            else:
                built[key] = self._build(value_node, (*path, key), depth + 1)
        if has_merge:
            for key_node, value_node in self._merged_pairs(node, path, set()):
                key = self._key(key_node, path)
                if key is not None and key not in built:
                    built[key] = self._build(value_node, (*path, key), depth + 1)
        return built

    def _placeholder(self, node: yaml.Node, path: _Path, message: str) -> None:
        self.problem(node.start_mark, path, message)
        self.placeholders.add(path)

    def _unconstructable(self, node: yaml.ScalarNode, path: _Path) -> str:
        """Why a scalar YAML read as a date, number, ... is not a valid one."""
        kind = _SCALAR_KINDS[node.tag]
        raw = node.value if len(node.value) <= 40 else node.value[:37] + "..."
        index = node.start_mark.index
        if _EXPLICIT_TAG.match(self.text, index):
            short = _short_tag(node.tag)
            return f"{raw!r} is not a valid {kind}, as its tag {short} says; fix it or drop the tag"
        article = "an" if kind[0] in "aeiou" else "a"
        key = path[-1] if path else ""
        where = f"{key}: " if isinstance(key, str) and key else ""
        return (
            f"{raw} is read by YAML as {article} {kind} but is not a valid one; "
            f'quote it: {where}"{raw}"'
        )

    def _key(self, node: yaml.Node, path: _Path) -> str | None:
        if isinstance(node, yaml.ScalarNode) and node.tag == _STR_TAG:
            return str(node.value)
        text = node.value if isinstance(node, yaml.ScalarNode) else _kind(node)
        self.problem(node.start_mark, path, f"keys must be strings; quote {text!r}")
        return None

    def _merge_sources(self, node: yaml.MappingNode, path: _Path) -> list[yaml.MappingNode]:
        """The mappings the '<<' key of ``node`` merges, in order; none without one.

        A second '<<' is a duplicate key.
        """
        seen: yaml.Node | None = None
        sources: list[yaml.MappingNode] = []
        for key_node, value_node in node.value:
            if key_node.tag != _MERGE_TAG:
                continue
            if seen is not None:
                self._report_once(
                    key_node,
                    key_node.start_mark,
                    path,
                    f"duplicate key '<<' (first at line {seen.start_mark.line + 1}); "
                    "merge several mappings with '<<: [*a, *b]'",
                )
                continue
            seen = key_node
            listed = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            if all(isinstance(s, yaml.MappingNode) for s in listed):
                sources = listed
            else:
                self.bad_merges.add(path)
                self._report_once(
                    key_node,
                    value_node.start_mark,
                    path,
                    "a '<<' merge key takes a mapping or a list of them",
                )
        return sources

    def _report_once(self, key: yaml.Node, mark: _Where, path: _Path, message: str) -> None:
        """Report a problem with a '<<' key once, however many mappings merge its own."""
        if id(key) not in self.reported:
            self.reported.add(id(key))
            self.problem(mark, path, message)

    def _merged_pairs(
        self, node: yaml.MappingNode, path: _Path, active: set[int]
    ) -> Iterator[tuple[yaml.Node, yaml.Node]]:
        """The (key, value) pairs the '<<' of ``node`` merges, the winning one of a key first.

        As PyYAML merges: an earlier source wins over a later one, and a source's own
        keys win over those it merges itself (expanded the same way, recursively).
        """
        active.add(id(node))
        for source in self._merge_sources(node, path):
            if id(source) in active:  # a merge loop; the alias check refuses it first
                continue
            for key_node, value_node in source.value:
                if key_node.tag != _MERGE_TAG:
                    yield key_node, value_node
            yield from self._merged_pairs(source, path, active)
        active.discard(id(node))

    def _check_schema(self, document: Any) -> None:
        if _fast_check()(document):
            return
        for error in _validator().iter_errors(document):
            path: _Path = tuple(error.absolute_path)
            if self._explained(path, str(error.validator)):
                continue
            if error.validator == "additionalProperties" and isinstance(error.instance, dict):
                self._unknown_keys(path, error.instance, error.schema)
                continue
            self.problem(self._mark(path), path, self._message(error, path))

    def _explained(self, path: _Path, validator: str) -> bool:
        """Whether a schema error at ``path`` only echoes a problem found building: the
        value there (or around it) is a placeholder or holds a too-deep one, or a key is
        missing from a mapping whose '<<' merge failed."""
        if validator == "required" and path in self.bad_merges:
            return True
        if not self.placeholders:
            return False
        if any(path[:end] in self.placeholders for end in range(len(path) + 1)):
            return True
        if validator in ("required", "additionalProperties"):  # about keys, still true
            return False
        size = len(path)
        return any(len(deep) > size and deep[:size] == path for deep in self.too_deep)

    def _unknown_keys(self, path: _Path, instance: dict[str, Any], schema: Any) -> None:
        allowed = sorted(schema.get("properties", {}))
        for key in instance:
            if key in allowed:
                continue
            if path == ("defaults",) and key in ("name", "quantity"):
                message = f"{key!r} cannot have a default; set it on each purchase"
            else:
                message = f"unknown key {key!r}"
                close = difflib.get_close_matches(key, allowed, n=1)
                message += f"; did you mean {close[0]!r}?" if close else ""
            key_path = (*path, key)
            self.problem(self._key_mark(key_path), key_path, message)

    def _message(self, error: jsonschema.ValidationError, path: _Path) -> str:
        field_name = path[-1] if path else ""
        if (
            error.validator == "type"
            and field_name in ("skuId", "productId")
            and isinstance(error.instance, int | float | datetime.date)
        ):
            node = self._node(path)
            raw = node.value if isinstance(node, yaml.ScalarNode) else str(error.instance)
            return (
                f"{raw} is read by YAML as the {_kind_of(error.instance)}; "
                f'quote it: {field_name}: "{raw}"'
            )
        if error.validator == "required":
            return f"missing required key {error.message.split()[0]}"
        if error.validator == "const" and path == ("version",):
            return f"version {error.instance!r} is not supported; the only version is 1"
        if field_name == "name" and isinstance(error.instance, str):
            if error.validator == "pattern":
                return (
                    f"{error.instance!r} is not a valid name: use lower-case letters, digits, "
                    "'.', '_' and '-', in segments separated by '/'"
                )
            if error.validator == "maxLength":
                return (
                    f"name is {len(error.instance)} characters long; "
                    f"the limit is {error.validator_value}"
                )
        return error.message

    def _node(self, path: _Path) -> yaml.Node | None:
        """The value node at ``path``, following merge keys; None when absent."""
        node = self.root
        for part in path:
            if isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                node = node.value[part] if part < len(node.value) else None
            elif isinstance(node, yaml.MappingNode):
                found = _lookup(node, str(part))
                node = found[1] if found else None
            else:
                return None
        return node

    def _key_mark(self, path: _Path) -> yaml.Mark | None:
        parent = self._node(path[:-1])
        found = _lookup(parent, str(path[-1])) if isinstance(parent, yaml.MappingNode) else None
        return found[0].start_mark if found else self._mark(path[:-1])

    def _mark(self, path: _Path) -> yaml.Mark | None:
        """Where the value at ``path`` stands, or its nearest enclosing value."""
        for end in range(len(path), -1, -1):
            node = self._node(path[:end])
            if node is not None:
                return node.start_mark
        return None

    def _check_purchases(self, document: dict[str, Any]) -> None:
        """Our checks beyond the schema; then, if the file has no problem at all, its
        purchases.

        Integers must be written as integers (JSON Schema takes 20.0 for one), and each
        purchase that is a mapping must end up with every identity field, from itself
        or the defaults, whatever else is wrong in the file.
        """
        self._whole_numbers()
        defaults = document.get("defaults", {})
        items = document.get("purchases", [])
        if not isinstance(items, list) or not isinstance(defaults, dict):
            return  # the schema said so; what the defaults would give is unknown
        complete = not self.result.problems
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                continue
            path: _Path = ("purchases", index)
            merged = {**defaults, **item}
            missing = [name for name in REQUIRED_AFTER_DEFAULTS if name not in merged]
            if missing:
                complete = False
                if path in self.bad_merges:
                    continue  # what the failed merge would have given is unknown
                for name in missing:
                    self.problem(
                        self._mark(path),
                        path,
                        f"missing required key {name!r} (set it on the purchase or in defaults)",
                    )
                continue
            if not complete:
                continue
            for name in ("tags", "provisioningContext"):
                merged[name] = {**defaults.get(name, {}), **item.get(name, {})}
            mark = self._mark((*path, "name"))
            assert mark is not None
            self.result.indexes.append(index)
            self.result.purchases.append(
                Purchase(
                    address=merged["name"],
                    identity=Identity(
                        customer_tenant_id=merged["customerTenantId"],
                        product_id=merged["productId"],
                        sku_id=merged["skuId"],
                        billing_cycle=merged["billingCycle"],
                        term_duration=merged["termDuration"],
                        type=merged.get("type", "subscription"),
                    ),
                    quantity=merged["quantity"],
                    product_variant_id=merged.get("productVariantId"),
                    tags=merged["tags"],
                    provisioning_context=merged["provisioningContext"],
                    attestation_accepted=merged.get("attestationAccepted"),
                    notification_email=merged.get("notificationEmail"),
                    invoice_profile_id=merged.get("invoiceProfileId"),
                    location=Location(self.path, mark.line + 1, mark.column + 1),
                )
            )
        if not complete:
            self.result.purchases.clear()
            self.result.indexes.clear()

    def _whole_numbers(self) -> None:
        """A problem for each integer field given as a float with no fraction (20.0)."""
        reported = {p.json_path for p in self.result.problems} if self.floats else set()
        for path, value in self.floats:
            owner = path[:-1]  # the defaults or a purchase
            if not (
                value.is_integer()
                and path[-1] in INTEGER_FIELDS
                and (owner == ("defaults",) or (len(owner) == 2 and owner[0] == "purchases"))
            ):
                continue
            if json_path(path) in reported:  # -3.0: the schema's message says enough
                continue
            node = self._node(path)
            raw = node.value if isinstance(node, yaml.ScalarNode) else repr(value)
            self.problem(
                self._mark(path), path, f"{raw} is not of type 'integer'; write {int(value)}"
            )


def _may_nest_deeply(text: str) -> bool:
    """A cheap look at the text: could it nest deeply enough to hurt libyaml's composer?

    Flow nesting needs a '[' or '{' per level; block nesting on one line needs a chain
    of indicators, and over lines an indentation that grows with the depth.
    """
    if text.count("[") + text.count("{") > FLOW_OPENERS_GATE:
        return True
    return _BLOCK_CHAIN.search(text) is not None or (
        "?" in text and _KEY_CHAIN.search(text) is not None
    )


def _short_tag(tag: str) -> str:
    """``tag:yaml.org,2002:set`` -> ``!!set``, as it is written in YAML."""
    return "!!" + tag.removeprefix(_STANDARD_TAG) if tag.startswith(_STANDARD_TAG) else tag


def _kind_of(value: Any) -> str:
    """``True`` -> 'boolean True', ``8`` -> 'number 8', a date -> 'date 2024-01-31'."""
    if isinstance(value, bool):
        return f"boolean {value}"
    if isinstance(value, int | float):
        return f"number {value!r}"
    if isinstance(value, datetime.datetime):
        return f"timestamp {value}"
    return f"date {value}"


def _first_line(node: yaml.MappingNode, key: str) -> int:
    """The line of the first ``key`` among a mapping's own keys."""
    for key_node, _ in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            return int(key_node.start_mark.line) + 1
    return int(node.start_mark.line) + 1


def _lookup(node: yaml.MappingNode, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    """The (key node, value node) of ``key`` in a mapping, through merge keys as ``_build``
    goes: the mapping's own keys, then each merged mapping in order, recursively."""
    for key_node, value_node in node.value:
        if key_node.tag == _MERGE_TAG:
            continue
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            return key_node, value_node
    for key_node, value_node in node.value:
        if key_node.tag == _MERGE_TAG:  # the first '<<' only: a second one is an error
            sources = (
                value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            )
            for source in sources:
                if isinstance(source, yaml.MappingNode):
                    found = _lookup(source, key)
                    if found:
                        return found
            break
    return None


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "mapping"
    if isinstance(node, yaml.SequenceNode):
        return "list"
    return "scalar"


def _expanded_size(root: yaml.Node) -> int:
    """How many nodes the document holds once every alias is expanded (memoised)."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node, depth: int) -> int:
        if depth > MAX_DEPTH:
            raise _TooDeepError(node)
        known = sizes.get(id(node))
        if known is not None:
            return known
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child, depth + 1) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(k, depth + 1) + size(v, depth + 1) for k, v in node.value)
        sizes[id(node)] = total
        return total

    return size(root, 0)


@functools.cache
def _fast_check() -> schemacheck.Check:
    return schemacheck.compile_schema(resources.schema("purchases"))


@functools.cache
def _validator() -> jsonschema.protocols.Validator:
    import jsonschema

    return jsonschema.Draft202012Validator(resources.schema("purchases"))
