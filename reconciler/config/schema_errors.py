"""A built document -> located, phrased problems: the schema's and the checks beyond it.

Valid documents, the common case, pass a compiled yes/no check of the JSON Schema;
only otherwise does jsonschema run, and each of its errors is placed along the node
tree (at the value, or at the key for an unknown key) and said in the words a person
editing YAML needs. Then come the rules the schema cannot express: integers written
as integers, identity fields present after defaults.

Must not parse YAML, read files or build records: it only adds problems to the tree.
"""

from __future__ import annotations

import datetime
import difflib
import functools
from typing import TYPE_CHECKING, Any

import yaml

from reconciler import resources, schemacheck
from reconciler.config.tree import NodePath, Tree, json_path

if TYPE_CHECKING:
    import jsonschema

#: The fields a purchase must end up with, from itself or the file's defaults.
REQUIRED_AFTER_DEFAULTS = (
    "customerTenantId",
    "productId",
    "skuId",
    "billingCycle",
    "termDuration",
)
#: Integer fields: a YAML float such as 20.0 passes JSON Schema's "integer" but is
#: refused, and so is any form YAML 1.1 reads as an integer other than plain decimal
#: digits (010 is 8, 0x10 is 16, 1_0 is 10, 1:30 is 90).
INTEGER_FIELDS = ("quantity", "customerTenantId", "productVariantId", "invoiceProfileId")


class SchemaErrors:
    """Checks one built document, adding each problem, located, to its tree."""

    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        #: Integer fields written in another form than plain decimal: that is said
        #: about them, not what the schema thinks of the number YAML made of them.
        self.odd_integers = {path for path, _, _ in tree.odd_integers if _is_integer_field(path)}

    def check(self, document: dict[str, Any]) -> None:
        """Every check, in the order their problems may depend on each other."""
        self._check_schema(document)
        self._whole_numbers()
        self._plain_integers()
        self._required_after_defaults(document)

    def _check_schema(self, document: Any) -> None:
        if _fast_check()(document):
            return
        for error in _validator().iter_errors(document):
            path: NodePath = tuple(error.absolute_path)
            if self._explained(path, str(error.validator)):
                continue
            if error.validator == "additionalProperties" and isinstance(error.instance, dict):
                self._unknown_keys(path, error.instance, error.schema)
                continue
            self.tree.problem(self.tree.mark(path), path, self._message(error, path))

    def _explained(self, path: NodePath, validator: str) -> bool:
        """Whether a schema error at ``path`` only echoes a problem found elsewhere: the
        value there (or around it) is a placeholder or holds a too-deep one, a key is
        missing from a mapping whose '<<' merge failed, or the number there is not
        written as a plain decimal."""
        tree = self.tree
        if validator == "required" and path in tree.bad_merges:
            return True
        if path in self.odd_integers:
            return True
        if not tree.placeholders:
            return False
        if any(path[:end] in tree.placeholders for end in range(len(path) + 1)):
            return True
        if validator in ("required", "additionalProperties"):  # about keys, still true
            return False
        size = len(path)
        return any(len(deep) > size and deep[:size] == path for deep in tree.too_deep)

    def _unknown_keys(self, path: NodePath, instance: dict[str, Any], schema: Any) -> None:
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
            self.tree.problem(self.tree.key_mark(key_path), key_path, message)

    def _message(self, error: jsonschema.ValidationError, path: NodePath) -> str:
        field_name = path[-1] if path else ""
        if (
            error.validator == "type"
            and field_name in ("skuId", "productId")
            and isinstance(error.instance, int | float | datetime.date)
        ):
            node = self.tree.node(path)
            raw = node.value if isinstance(node, yaml.ScalarNode) else str(error.instance)
            return (
                f"{raw} is read by YAML as the {_kind_of(error.instance)}; "
                f'quote it: {field_name}: "{raw}"'
            )
        if error.validator == "required":
            return f"missing required key {error.message.split()[0]}"
        found = self._found(error.instance, path)
        if error.validator == "const" and path == ("version",):
            return f"version {found} is not supported; the only version is 1"
        if error.validator == "pattern" and field_name in _ONE_LINE_FIELDS:
            control = _first_control(error.instance)
            if control is not None:
                return (
                    f"holds a control character, {control}; {field_name} is one line of "
                    "printable text"
                )
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
        if not _python_only(error.instance):
            return error.message
        # jsonschema shows the value as Python writes it (datetime.date(2024, 1, 1), True,
        # None); say it in the words of the YAML that was written instead.
        if error.validator == "type":
            expected = " or ".join(_EXPECTED.get(t, t) for t in _types(error.validator_value))
            return f"{self._found(error.instance, path, 'is read by YAML as ')}, not {expected}"
        shown = repr(error.instance)
        if error.message.startswith(shown):
            return found + error.message[len(shown) :]
        return error.message

    def _found(self, value: Any, path: NodePath, read_as: str = "") -> str:
        """A value as the YAML it came from, ``2024-01-01 (read by YAML as a date)`` or with
        ``read_as`` ``2024-01-01 is read by YAML as a date``; a collection as ``a mapping``;
        JSON-like values (strings, finite numbers) as jsonschema shows them."""
        if not _python_only(value):
            return repr(value)
        if isinstance(value, dict | list):
            return "a mapping" if isinstance(value, dict) else "a list"
        node = self.tree.node(path)
        raw = node.value if isinstance(node, yaml.ScalarNode) else ""
        if len(raw) > 40:
            raw = raw[:37] + "..."
        kind = _yaml_kind(value)
        if not raw:
            return f"an empty value ({kind})"
        return f"{raw} {read_as}{kind}" if read_as else f"{raw} (read by YAML as {kind})"

    def _whole_numbers(self) -> None:
        """A problem for each integer field given as a float with no fraction (20.0)."""
        tree = self.tree
        reported = {p.json_path for p in tree.problems} if tree.floats else set()
        for path, value in tree.floats:
            if not (value.is_integer() and _is_integer_field(path)):
                continue
            if json_path(path) in reported:  # -3.0: the schema's message says enough
                continue
            node = tree.node(path)
            raw = node.value if isinstance(node, yaml.ScalarNode) else repr(value)
            tree.problem(
                tree.mark(path), path, f"{raw} is not of type 'integer'; write {int(value)}"
            )

    def _plain_integers(self) -> None:
        """A problem for each integer field YAML read from another form than plain
        decimal digits: ``quantity: 010`` buys 8 seats, ``customerTenantId: 0333333``
        names another customer."""
        if not self.odd_integers:
            return
        tree = self.tree
        reported = {p.json_path for p in tree.problems}
        for path, node, value in tree.odd_integers:
            if path not in self.odd_integers or json_path(path) in reported:
                continue  # another field, or a key the schema refused (defaults.quantity)
            raw = node.value if node.value.isprintable() else repr(node.value)
            tree.problem(
                tree.mark(path),
                path,
                f"{raw} is read by YAML as the number {value}; write a plain decimal number",
            )

    def _required_after_defaults(self, document: dict[str, Any]) -> None:
        """Each purchase that is a mapping must end up with every identity field, from
        itself or the defaults, whatever else is wrong in the file."""
        defaults = document.get("defaults", {})
        items = document.get("purchases", [])
        if not isinstance(items, list) or not isinstance(defaults, dict):
            return  # the schema said so; what the defaults would give is unknown
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                continue
            path: NodePath = ("purchases", index)
            missing = [
                name
                for name in REQUIRED_AFTER_DEFAULTS
                if name not in item and name not in defaults
            ]
            if not missing or path in self.tree.bad_merges:
                continue  # a failed merge: what it would have given is unknown
            for name in missing:
                self.tree.problem(
                    self.tree.mark(path),
                    path,
                    f"missing required key {name!r} (set it on the purchase or in defaults)",
                )


def _is_integer_field(path: NodePath) -> bool:
    """Whether ``path`` is the version, an integer field of the defaults or of a purchase,
    or an imported subscription id."""
    owner = path[:-1]
    if len(path) == 4 and path[0] == "import" and path[2] == "subscriptions":
        return True  # a subscription id
    return path == ("version",) or (
        bool(path)
        and path[-1] in INTEGER_FIELDS
        and (owner == ("defaults",) or (len(owner) == 2 and owner[0] == "purchases"))
    )


#: Fields whose text goes into a request as one line: a line break or other control
#: character in them is refused (the schema's pattern), and said so.
_ONE_LINE_FIELDS = ("notificationEmail",)

#: JSON Schema's type names in the words of YAML.
_EXPECTED = {
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "boolean": "a boolean (true or false)",
    "object": "a mapping",
    "array": "a list",
    "null": "null",
}

#: Control characters with a name a person knows.
_CONTROL_NAMES = {
    "\t": "a tab",
    "\n": "a line break",
    "\r": "a carriage return",
    "\x85": "a line break (NEL)",
    "\u2028": "a line separator",
    "\u2029": "a paragraph separator",
}


def _types(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else [str(v) for v in value]


def _first_control(value: Any) -> str | None:
    """The first control character of a string, named, with its position; or None."""
    if not isinstance(value, str):
        return None
    for index, char in enumerate(value):
        code = ord(char)
        if code < 0x20 or 0x7F <= code <= 0x9F or char in "\u2028\u2029":
            name = _CONTROL_NAMES.get(char, "a control character")
            return f"U+{code:04X} ({name}) at character {index + 1}"
    return None


def _python_only(value: Any, depth: int = 0) -> bool:
    """Whether ``repr(value)`` is Python's word for it rather than YAML's: a date, a
    boolean, null, binary, an infinite number, or a collection holding one."""
    if value is None or isinstance(value, bool | bytes | datetime.date):
        return True
    if isinstance(value, float):
        return value != value or value in (float("inf"), float("-inf"))
    if depth > 64:  # the tree is never deeper; stay bounded all the same
        return False
    if isinstance(value, dict):
        return any(_python_only(v, depth + 1) for v in value.values())
    if isinstance(value, list):
        return any(_python_only(v, depth + 1) for v in value)
    return False


def _yaml_kind(value: Any) -> str:
    """What YAML read a scalar as, with an article."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, bytes):
        return "binary data"
    if isinstance(value, datetime.datetime):
        return "a timestamp"
    if isinstance(value, datetime.date):
        return "a date"
    return "not a number" if value != value else "an infinite number"


def _kind_of(value: Any) -> str:
    """``True`` -> 'boolean True', ``8`` -> 'number 8', a date -> 'date 2024-01-31'."""
    if isinstance(value, bool):
        return f"boolean {value}"
    if isinstance(value, int | float):
        return f"number {value!r}"
    if isinstance(value, datetime.datetime):
        return f"timestamp {value}"
    return f"date {value}"


@functools.cache
def _fast_check() -> schemacheck.Check:
    return schemacheck.compile_schema(resources.schema("purchases"))


@functools.cache
def _validator() -> jsonschema.protocols.Validator:
    import jsonschema

    return jsonschema.Draft202012Validator(resources.schema("purchases"))
