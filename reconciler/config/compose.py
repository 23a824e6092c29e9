"""YAML text -> the root node of its node tree, behind the gates that refuse what would hurt.

Composes the text with PyYAML (libyaml when built in), but first refuses nesting deep
enough to overflow the composer (a cheap look at the text, then a walk of the parser's
events, which takes no recursion) and, after composing, aliases that expand to a huge
document. Each refusal is a located problem on the file's ``Tree``.

Knows YAML, not the declarations format, and builds no values (that is ``tree``); it
reads no file (it is given the text).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Protocol, cast

import yaml


class Where(Protocol):
    """A place in a file, as a YAML mark gives it (0-based)."""

    @property
    def line(self) -> int: ...
    @property
    def column(self) -> int: ...


class Tree(Protocol):
    """What composing needs of the file's tree (``config.tree.Tree``): its path, and
    where to put a located problem."""

    @property
    def path(self) -> str: ...

    def problem(self, mark: Where | None, path: tuple[str | int, ...], message: str) -> None: ...


#: Nodes one file may expand to through aliases; a real declarations file is far below.
MAX_EXPANDED_NODES = 200_000
MAX_DEPTH = 64


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


#: A block sequence or explicit key nested on the same line four times: ``- - - -``.
#: Two patterns, as each starts with a literal character, which ``re`` finds fast.
_BLOCK_CHAIN = re.compile(r"-[ \t]+[-?][ \t]+[-?][ \t]+[-?]\s")
_KEY_CHAIN = re.compile(r"\?[ \t]+[-?][ \t]+[-?][ \t]+[-?]\s")


_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")


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
                f"expected a mapping with 'version: 1' at the top level, found a {node_kind(root)}",
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


def node_kind(node: yaml.Node) -> str:
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
