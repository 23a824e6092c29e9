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

import difflib
import functools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

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

_Path = tuple[str | int, ...]

try:  # libyaml makes parsing several times faster; PyYAML works without it.
    _Loader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment,unused-ignore]
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _Loader = yaml.SafeLoader


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
    for file in files:
        parsed = _FileParser(str(file)).parse(_read_text(file, problems))
        problems.extend(parsed.problems)
        purchases.extend(parsed.purchases)
    problems.extend(_duplicate_names(purchases))
    if problems:
        raise ConfigError(sorted(problems, key=lambda p: (p.path, p.line, p.column, p.message)))
    purchases.sort(key=lambda p: p.address)
    return Declarations(purchases=tuple(purchases), files=tuple(str(f) for f in files))


def load_text(text: str, path: str = "<string>") -> Declarations:
    """Check one document given as text (tests and tools); same rules as ``load``."""
    parsed = _FileParser(path).parse(text)
    problems = parsed.problems + _duplicate_names(parsed.purchases)
    if problems:
        raise ConfigError(sorted(problems, key=lambda p: (p.path, p.line, p.column, p.message)))
    return Declarations(
        purchases=tuple(sorted(parsed.purchases, key=lambda p: p.address)), files=(path,)
    )


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


def _duplicate_names(purchases: Sequence[Purchase]) -> list[ConfigProblem]:
    first: dict[str, Purchase] = {}
    problems = []
    for purchase in purchases:
        seen = first.setdefault(purchase.address, purchase)
        if seen is purchase or seen.location is None or purchase.location is None:
            continue
        where = purchase.location
        problems.append(
            ConfigProblem(
                where.path,
                where.line,
                where.column,
                "name",
                f"duplicate name {purchase.address!r}: declared in {where.path}:{where.line} "
                f"and in {seen.location.path}:{seen.location.line}",
            )
        )
    return problems


_SCALAR = yaml.constructor.SafeConstructor()
_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"


@dataclass
class _Parsed:
    problems: list[ConfigProblem] = field(default_factory=list)
    purchases: list[Purchase] = field(default_factory=list)


class _TooDeepError(Exception):
    def __init__(self, node: yaml.Node) -> None:
        self.node = node


class _FileParser:
    """Turns one file's text into purchases, collecting located problems."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.result = _Parsed()
        self.root: yaml.Node | None = None

    def parse(self, text: str | None) -> _Parsed:
        if text is None:
            return self.result
        root = self._compose(text, may_alias="*" in text)
        if root is None:
            return self.result
        self.root = root
        document = self._build(root, (), 0)
        self._check_schema(document)
        if not self.result.problems:
            self._build_purchases(document)
        return self.result

    def problem(self, mark: yaml.Mark | None, path: _Path, message: str) -> None:
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        self.result.problems.append(
            ConfigProblem(self.path, line, column, json_path(path), message)
        )

    def _compose(self, text: str, *, may_alias: bool) -> yaml.Node | None:
        try:
            root = yaml.compose(text, Loader=_Loader)
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

    def _build(self, node: yaml.Node, path: _Path, depth: int) -> Any:
        """Plain values from the node tree; problems are recorded with their path."""
        if isinstance(node, yaml.ScalarNode):
            if node.tag == _STR_TAG:
                return node.value
            constructor = _SCALAR.yaml_constructors.get(node.tag)
            if constructor is None:
                self.problem(node.start_mark, path, f"unsupported YAML tag {node.tag}")
                return None
            return constructor(_SCALAR, node)
        if depth >= MAX_DEPTH:
            self.problem(node.start_mark, path, f"nesting is deeper than {MAX_DEPTH} levels")
            return None
        if isinstance(node, yaml.SequenceNode):
            return [self._build(child, (*path, i), depth + 1) for i, child in enumerate(node.value)]
        assert isinstance(node, yaml.MappingNode)
        built: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        merged: list[yaml.MappingNode] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merged.extend(self._merge_sources(value_node, path))
                continue
            key = self._key(key_node, path)
            if key is None:
                continue
            if key in first_line:
                self.problem(
                    key_node.start_mark,
                    (*path, key),
                    f"duplicate key {key!r} (first at line {first_line[key]})",
                )
                continue
            first_line[key] = key_node.start_mark.line + 1
            built[key] = self._build(value_node, (*path, key), depth + 1)
        for source in merged:
            for key_node, value_node in source.value:
                key = self._key(key_node, path)
                if key is not None and key not in built:
                    built[key] = self._build(value_node, (*path, key), depth + 1)
        return built

    def _key(self, node: yaml.Node, path: _Path) -> str | None:
        if isinstance(node, yaml.ScalarNode) and node.tag == _STR_TAG:
            return str(node.value)
        text = node.value if isinstance(node, yaml.ScalarNode) else _kind(node)
        self.problem(node.start_mark, path, f"keys must be strings; quote {text!r}")
        return None

    def _merge_sources(self, node: yaml.Node, path: _Path) -> list[yaml.MappingNode]:
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        if all(isinstance(s, yaml.MappingNode) for s in sources):
            return list(sources)
        self.problem(node.start_mark, path, "a '<<' merge key takes a mapping or a list of them")
        return []

    def _check_schema(self, document: Any) -> None:
        if _fast_check()(document):
            return
        for error in _validator().iter_errors(document):
            path: _Path = tuple(error.absolute_path)
            if error.validator == "additionalProperties" and isinstance(error.instance, dict):
                self._unknown_keys(path, error.instance, error.schema)
                continue
            self.problem(self._mark(path), path, self._message(error, path))

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
            and isinstance(error.instance, int | float)
        ):
            node = self._node(path)
            raw = node.value if isinstance(node, yaml.ScalarNode) else str(error.instance)
            return (
                f"{raw} is read by YAML as the number {error.instance!r}; "
                f'quote it: {field_name}: "{raw}"'
            )
        if error.validator == "required":
            return f"missing required key {error.message.split()[0]}"
        if error.validator == "const" and path == ("version",):
            return f"version {error.instance!r} is not supported; the only version is 1"
        if error.validator == "pattern" and field_name == "name":
            return (
                f"{error.instance!r} is not a valid name: use lower-case letters, digits, "
                "'.', '_' and '-', in segments separated by '/'"
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

    def _build_purchases(self, document: Mapping[str, Any]) -> None:
        defaults: Mapping[str, Any] = document.get("defaults", {})
        for index, item in enumerate(document.get("purchases", [])):
            path: _Path = ("purchases", index)
            merged = {**defaults, **item}
            for name in ("tags", "provisioningContext"):
                merged[name] = {**defaults.get(name, {}), **item.get(name, {})}
            missing = [name for name in REQUIRED_AFTER_DEFAULTS if name not in merged]
            for name in missing:
                self.problem(
                    self._mark(path),
                    path,
                    f"missing required key {name!r} (set it on the purchase or in defaults)",
                )
            if missing:
                continue
            mark = self._mark((*path, "name"))
            assert mark is not None
            self.result.purchases.append(
                Purchase(
                    address=merged["name"],
                    identity=Identity(
                        customer_tenant_id=int(merged["customerTenantId"]),
                        product_id=merged["productId"],
                        sku_id=merged["skuId"],
                        billing_cycle=merged["billingCycle"],
                        term_duration=merged["termDuration"],
                        type=merged.get("type", "subscription"),
                    ),
                    quantity=int(merged["quantity"]),
                    product_variant_id=_optional_int(merged.get("productVariantId")),
                    tags=merged["tags"],
                    provisioning_context=merged["provisioningContext"],
                    attestation_accepted=merged.get("attestationAccepted"),
                    notification_email=merged.get("notificationEmail"),
                    invoice_profile_id=_optional_int(merged.get("invoiceProfileId")),
                    location=Location(self.path, mark.line + 1, mark.column + 1),
                )
            )


def _lookup(node: yaml.MappingNode, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    """The (key node, value node) of ``key`` in a mapping, merge keys included."""
    for key_node, value_node in node.value:
        if key_node.tag == _MERGE_TAG:
            continue
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            return key_node, value_node
    for key_node, value_node in node.value:
        if key_node.tag == _MERGE_TAG:
            sources = (
                value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            )
            for source in sources:
                if isinstance(source, yaml.MappingNode):
                    found = _lookup(source, key)
                    if found:
                        return found
    return None


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


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
