"""YAML text -> a node tree (which keeps positions) -> plain values, with located problems.

Composes the text with PyYAML (libyaml when built in), refuses what would hurt before
it happens (nesting deep enough to overflow the composer, aliases that expand to a
huge document), and builds plain values from the nodes itself rather than through
PyYAML's constructor, so that duplicate keys are refused and merge keys are expanded
with the positions of what they merge. ``Tree`` keeps the nodes so that later checks
can say where a value was written.

Knows YAML, not the declarations format: it must not know the schema or the purchase
fields, and it reads no file (it is given the text).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import yaml

from reconciler.errors import ConfigProblem

#: Nodes one file may expand to through aliases; a real declarations file is far below.
MAX_EXPANDED_NODES = 200_000
MAX_DEPTH = 64
#: The longest integer scalar built into a number: far more than any value a field takes
#: (2147483647 in binary is 33 characters), far less than a costly conversion.
MAX_INTEGER_CHARACTERS = 100

#: A value's place in the document: ``('purchases', 1, 'quantity')``.
NodePath = tuple[str | int, ...]

try:  # libyaml makes parsing several times faster; PyYAML works without it.
    _Base: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment,unused-ignore]
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _Base = yaml.SafeLoader

#: Scalar (value, implicit) -> tag, shared by every file: the composer asks the
#: resolver (Python, even under libyaml) about every scalar, and declarations
#: repeat the same few values (products, cycles, quantities) thousands of times.
_RESOLVED: dict[tuple[str, tuple[bool, bool]], str] = {}
_RESOLVED_MAX = 100_000
_base_resolve = cast("Callable[[yaml.SafeLoader, type[yaml.Node], Any, Any], str]", _Base.resolve)


def _resolve(self: yaml.SafeLoader, kind: type[yaml.Node], value: Any, implicit: Any) -> str:
    if kind is not yaml.ScalarNode:
        return _base_resolve(self, kind, value, implicit)
    key = (value, implicit)
    tag = _RESOLVED.get(key)
    if tag is None:
        if len(_RESOLVED) >= _RESOLVED_MAX:
            _RESOLVED.clear()
        tag = _RESOLVED[key] = _base_resolve(self, kind, value, implicit)
    return tag


def _no_path_resolvers(self: yaml.SafeLoader, *args: Any) -> None:
    # SafeLoader has no path resolvers (nothing here adds any), so the
    # composer's per-node descend/ascend calls have nothing to track.
    return None


_Loader: type[yaml.SafeLoader] = type(
    "_Loader",
    (_Base,),
    {
        "resolve": _resolve,
        "descend_resolver": _no_path_resolvers,
        "ascend_resolver": _no_path_resolvers,
    },
)
assert not _Base.yaml_path_resolvers


#: More '[' and '{' than this, or a chain of block indicators (``- - - -``) on a line, and
#: a file's parser events are walked, which takes no recursion, before it is composed:
#: libyaml's composer recurses in C per nesting level (about 30,000 levels overflow the
#: stack) and slows down quadratically with depth; PyYAML's own composer hits Python's
#: recursion limit much earlier. Below this, composing is safe and ``ValueBuilder``
#: reports nesting deeper than MAX_DEPTH like any other problem.
FLOW_OPENERS_GATE = 1_000 if _Base is not yaml.SafeLoader else 200

_SCALAR = yaml.constructor.SafeConstructor()
_STANDARD_TAG = "tag:yaml.org,2002:"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"
_SCALAR_NODE = yaml.ScalarNode
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MAP_TAG = "tag:yaml.org,2002:map"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_INT_TAG = "tag:yaml.org,2002:int"
#: Scalar tags built into values, with the word for the kind of value each stands for.
_SCALAR_KINDS = {
    "tag:yaml.org,2002:null": "null",
    "tag:yaml.org,2002:bool": "boolean",
    _INT_TAG: "integer",
    _FLOAT_TAG: "number",
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


def json_path(path: Sequence[str | int]) -> str:
    """``('purchases', 1, 'quantity')`` -> ``purchases[1].quantity``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


class _Where(Protocol):
    """A position in the text: ``yaml.Mark`` and libyaml's marks both have one."""

    line: int
    column: int


@dataclass
class Tree:
    """One file's node tree, the values built from it, and what building found.

    The checks that follow read it to locate their problems and add them to
    ``problems``, so that every problem of a file ends up in one list.
    """

    path: str
    text: str
    problems: list[ConfigProblem] = field(default_factory=list)
    root: yaml.MappingNode | None = None
    #: The built document; None when the text is not a mapping that could be built.
    document: dict[str, Any] | None = None
    #: Paths whose value could not be built and stands as None: the schema's verdicts
    #: on them (or, for ``too_deep``, on what encloses them) are noise.
    placeholders: set[NodePath] = field(default_factory=set)
    too_deep: set[NodePath] = field(default_factory=set)
    #: Mappings with a '<<' that is not a mapping: which keys they lack is unknown.
    bad_merges: set[NodePath] = field(default_factory=set)
    #: Where floats were built: an integer field given 20.0 passes JSON Schema.
    floats: list[tuple[NodePath, float]] = field(default_factory=list)
    #: Integers not written as plain decimals (``010``, ``0x10``, ``1_0``, ``+5``,
    #: ``1:30``), with their node and the number YAML 1.1 reads.
    odd_integers: list[tuple[NodePath, yaml.ScalarNode, int]] = field(default_factory=list)

    def problem(self, mark: _Where | None, path: NodePath, message: str) -> None:
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        self.problems.append(ConfigProblem(self.path, line, column, json_path(path), message))

    def node(self, path: NodePath) -> yaml.Node | None:
        """The value node at ``path``, following merge keys; None when absent."""
        node: yaml.Node | None = self.root
        for part in path:
            if isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                node = node.value[part] if part < len(node.value) else None
            elif isinstance(node, yaml.MappingNode):
                found = _lookup(node, str(part))
                node = found[1] if found else None
            else:
                return None
        return node

    def value_marks(self, path: NodePath, key: str, count: int) -> list[yaml.Mark]:
        """Where ``key`` stands in each of the ``count`` mappings of the list at ``path``
        (the start of its value, as ``mark`` gives it); the list and every key must be
        there, as in a document that passed its checks."""
        if count == 0:
            return []  # no list, or an empty one
        items = self.node(path)
        assert isinstance(items, yaml.SequenceNode)
        assert len(items.value) == count
        marks = []
        for item in items.value:
            found = _lookup(item, key) if isinstance(item, yaml.MappingNode) else None
            assert found is not None, f"{key!r} missing at {json_path(path)}"
            marks.append(found[1].start_mark)
        return marks

    def key_mark(self, path: NodePath) -> yaml.Mark | None:
        """Where the key of the value at ``path`` stands (or its mapping, if absent)."""
        parent = self.node(path[:-1])
        found = _lookup(parent, str(path[-1])) if isinstance(parent, yaml.MappingNode) else None
        return found[0].start_mark if found else self.mark(path[:-1])

    def mark(self, path: NodePath) -> yaml.Mark | None:
        """Where the value at ``path`` stands, or its nearest enclosing value."""
        for end in range(len(path), -1, -1):
            node = self.node(path[:end])
            if node is not None:
                return node.start_mark
        return None


def read_tree(path: str, text: str) -> Tree:
    """Compose and build ``text``; ``tree.document`` is None when there is nothing more
    to check (every reason is among ``tree.problems``)."""
    tree = Tree(path, text)
    root = Composer(tree).compose(text, may_alias="*" in text)
    if root is None:
        return tree
    tree.root = root
    document = ValueBuilder(tree).build(root, (), 0)
    if isinstance(document, dict):  # else a tag we do not support on the whole file
        tree.document = document
    return tree


class _TooDeepError(Exception):
    def __init__(self, node: yaml.Node) -> None:
        self.node = node


class Composer:
    """Text -> the root mapping node, behind the safety gates (depth, alias expansion)."""

    def __init__(self, tree: Tree) -> None:
        self.tree = tree

    def compose(self, text: str, *, may_alias: bool) -> yaml.MappingNode | None:
        problem = self.tree.problem
        if _may_nest_deeply(text) and self._too_deep_events(text):
            return None
        try:
            root = yaml.compose(text, Loader=_Loader)
        except RecursionError:  # pragma: no cover - PyYAML's own composer, deep in blocks
            problem(None, (), f"nesting is deeper than {MAX_DEPTH} levels")
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
            problem(mark, (), f"YAML syntax error: {detail or exc}")
            return None
        if root is None:
            problem(None, (), "file is empty; expected a mapping with 'version: 1'")
            return None
        if not isinstance(root, yaml.MappingNode):
            problem(
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
            problem(
                exc.node.start_mark,
                (),
                f"nesting is deeper than {MAX_DEPTH} levels (or an alias refers to itself)",
            )
            return None
        if size > MAX_EXPANDED_NODES:
            problem(
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
                        self.tree.problem(
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
        mark = yaml.Mark(self.tree.path, position, len(breaks), position - line_start, None, 0)
        if isinstance(exc.character, bytes):
            what = f"byte #x{exc.character[0]:02x}"
        else:
            what = f"character #x{exc.character:04x}"
        self.tree.problem(mark, (), f"YAML syntax error: unacceptable {what}: {exc.reason}")


class ValueBuilder:
    """The node tree -> plain values, expanding merge keys; problems go to the tree."""

    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        self.problem = tree.problem
        #: The '<<' key nodes ``_report_once`` reported.
        self.reported: set[int] = set()

    def build(self, node: yaml.Node, path: NodePath, depth: int) -> Any:
        """Plain values from the node tree; problems are recorded with their path."""
        if isinstance(node, yaml.ScalarNode):
            if node.tag == _STR_TAG:
                return node.value
            if node.tag == _INT_TAG:
                raw = node.value
                if len(raw) > MAX_INTEGER_CHARACTERS:
                    # Never converted: turning thousands of digits into a number (or one
                    # back into digits) costs time quadratic in their count, and Python
                    # refuses more than 4,300 of them.
                    return self._placeholder(node, path, _too_long(raw))
                # Plain decimal digits, the common case, skip PyYAML's constructor, which
                # costs several times more; every other form is one to report.
                if raw.isdigit() and raw.isascii() and (raw[0] != "0" or raw == "0"):
                    return int(raw)
            constructor = _SCALAR_CONSTRUCTORS.get(node.tag)
            if constructor is None:
                return self._placeholder(node, path, f"unsupported YAML tag {_short_tag(node.tag)}")
            try:
                value = constructor(_SCALAR, node)
            except Exception:  # any value the constructor refuses, whatever it raises
                return self._placeholder(node, path, self._unconstructable(node, path))
            if node.tag == _FLOAT_TAG:
                self.tree.floats.append((path, value))
            elif node.tag == _INT_TAG and str(value) != node.value:
                self.tree.odd_integers.append((path, node, value))
            return value
        if depth >= MAX_DEPTH:
            self.tree.too_deep.add(path)
            return self._placeholder(node, path, f"nesting is deeper than {MAX_DEPTH} levels")
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _SEQ_TAG:
                return self._placeholder(node, path, f"unsupported YAML tag {_short_tag(node.tag)}")
            return [self.build(child, (*path, i), depth + 1) for i, child in enumerate(node.value)]
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
                built[key] = self.build(value_node, (*path, key), depth + 1)
        if has_merge:
            for key_node, value_node in self._merged_pairs(node, path, set()):
                key = self._key(key_node, path)
                if key is not None and key not in built:
                    built[key] = self.build(value_node, (*path, key), depth + 1)
        return built

    def _placeholder(self, node: yaml.Node, path: NodePath, message: str) -> None:
        self.problem(node.start_mark, path, message)
        self.tree.placeholders.add(path)

    def _unconstructable(self, node: yaml.ScalarNode, path: NodePath) -> str:
        """Why a scalar YAML read as a date, number, ... is not a valid one."""
        kind = _SCALAR_KINDS[node.tag]
        raw = node.value if len(node.value) <= 40 else node.value[:37] + "..."
        index = node.start_mark.index
        if _EXPLICIT_TAG.match(self.tree.text, index):
            short = _short_tag(node.tag)
            return f"{raw!r} is not a valid {kind}, as its tag {short} says; fix it or drop the tag"
        article = "an" if kind[0] in "aeiou" else "a"
        key = path[-1] if path else ""
        where = f"{key}: " if isinstance(key, str) and key else ""
        return (
            f"{raw} is read by YAML as {article} {kind} but is not a valid one; "
            f'quote it: {where}"{raw}"'
        )

    def _key(self, node: yaml.Node, path: NodePath) -> str | None:
        if isinstance(node, yaml.ScalarNode) and node.tag == _STR_TAG:
            return str(node.value)
        text = node.value if isinstance(node, yaml.ScalarNode) else _kind(node)
        if len(text) > 40:
            text = text[:37] + "..."
        self.problem(node.start_mark, path, f"keys must be strings; quote {text!r}")
        return None

    def _merge_sources(self, node: yaml.MappingNode, path: NodePath) -> list[yaml.MappingNode]:
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
                self.tree.bad_merges.add(path)
                self._report_once(
                    key_node,
                    value_node.start_mark,
                    path,
                    "a '<<' merge key takes a mapping or a list of them",
                )
        return sources

    def _report_once(self, key: yaml.Node, mark: _Where, path: NodePath, message: str) -> None:
        """Report a problem with a '<<' key once, however many mappings merge its own."""
        if id(key) not in self.reported:
            self.reported.add(id(key))
            self.problem(mark, path, message)

    def _merged_pairs(
        self, node: yaml.MappingNode, path: NodePath, active: set[int]
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


def _too_long(raw: str) -> str:
    unit = "digits" if raw.isdigit() else "characters"
    return (
        f"{raw[:20]}... is a number of {len(raw):,} {unit}, far larger than any value "
        "a declarations file takes"
    )


def _short_tag(tag: str) -> str:
    """``tag:yaml.org,2002:set`` -> ``!!set``, as it is written in YAML."""
    return "!!" + tag.removeprefix(_STANDARD_TAG) if tag.startswith(_STANDARD_TAG) else tag


def _first_line(node: yaml.MappingNode, key: str) -> int:
    """The line of the first ``key`` among a mapping's own keys."""
    for key_node, _ in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            return int(key_node.start_mark.line) + 1
    return int(node.start_mark.line) + 1


def _lookup(node: yaml.MappingNode, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    """The (key node, value node) of ``key`` in a mapping, through merge keys as
    ``ValueBuilder`` goes: the mapping's own keys, then each merged mapping in order,
    recursively. It lives beside the builder because the two must agree."""
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
