"""YAML text -> a node tree (which keeps positions) -> plain values, with located problems.

``compose`` turns the text into nodes with PyYAML (libyaml when built in), behind the
gates that refuse what would hurt (nesting deep enough to overflow the composer,
aliases that expand to a huge document); this module builds plain values from the
nodes itself rather than through PyYAML's constructor, so that duplicate keys are
refused and merge keys are expanded with the positions of what they merge. ``Tree``
keeps the nodes so that later checks can say where a value was written.

Knows YAML, not the declarations format: it must not know the schema or the purchase
fields, and it reads no file (it is given the text).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from reconciler.config.compose import MAX_DEPTH, Composer, Where, node_kind
from reconciler.errors import ConfigProblem

#: The longest integer scalar built into a number: far more than any value a field takes
#: (2147483647 in binary is 33 characters), far less than a costly conversion.
MAX_INTEGER_CHARACTERS = 100

#: A value's place in the document: ``('purchases', 1, 'quantity')``.
NodePath = tuple[str | int, ...]


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
#: A node that starts with an explicit tag (after an optional anchor).
_EXPLICIT_TAG = re.compile(r"(?:&\S+\s+)?!")


def json_path(path: Sequence[str | int]) -> str:
    """``('purchases', 1, 'quantity')`` -> ``purchases[1].quantity``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


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

    def problem(self, mark: Where | None, path: NodePath, message: str) -> None:
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
            return self._scalar(node, path)
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
        return self._mapping(node, path, depth)

    def _scalar(self, node: yaml.ScalarNode, path: NodePath) -> Any:
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

    def _mapping(self, node: yaml.MappingNode, path: NodePath, depth: int) -> dict[str, Any]:
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
        text = node.value if isinstance(node, yaml.ScalarNode) else node_kind(node)
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

    def _report_once(self, key: yaml.Node, mark: Where, path: NodePath, message: str) -> None:
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
