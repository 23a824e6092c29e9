"""Fuzzing the declarations loader: hostile text never crashes it, never changes what is
bought, and whatever it accepts reads back the same.

Three generators (hypothesis):

- documents written scalar by scalar, each value in a form drawn from benign forms
  (plain decimal integers, valid names plain or quoted, any string quoted, one-line
  e-mail addresses, ``version: 1``) or hostile ones (YAML 1.1 integers: 010, 0x10,
  0b101, 1_0, 1:30, +5, 5.0, 1e3; out-of-range numbers and numbers of thousands of
  digits; dates, binary and nulls where numbers go; ``version`` as 0x1, 1.0, 01 or a
  date; names and e-mail addresses with a trailing newline from a block scalar or any
  control character; names in upper case, with bad slashes, too long). The oracle is
  exact: a document with any hostile value is a ``ConfigError``; one without loads,
  with exactly the values written; and what it loads, written out again, loads the
  same;
- any text, and text spliced from YAML fragments: a ``ConfigError`` or declarations,
  never another exception;
- trees with special files (FIFOs, a symlink to /dev/zero, a directory named
  ``x.yaml``, dangling links) beside a valid file: a ``ConfigError``, quickly.

The number of examples is multiplied by ``--reliability-full``; the examples come
from the master seed (``--reliability-seed`` replays them).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import TALLY
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from reconciler import config
from reconciler.errors import ConfigError
from reconciler.model import BILLING_CYCLES, TERM_DURATIONS, Declarations, is_address

INT32 = 2**31 - 1
EXAMPLES = 250


def _settings(scale: int, examples: int = EXAMPLES) -> settings:
    return settings(
        max_examples=examples * scale,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        database=None,
    )


@dataclass(frozen=True)
class Form:
    """One value as written in YAML, whether the loader must accept it, and its value."""

    text: str
    valid: bool = False
    value: Any = None


# -- values --------------------------------------------------------------------------

names = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,10}(/[a-z0-9][a-z0-9._-]{0,10}){0,2}", fullmatch=True)
# Any text: string_form escapes what YAML may not hold raw.
safe_text = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=16)


def _pick(draw: st.DrawFn, hostility: float, benign: list[Form], hostile: list[Form]) -> Form:
    """A hostile form with probability ``hostility``, else a benign one."""
    chosen = hostile if draw(st.floats(0, 1, exclude_max=True)) < hostility else benign
    return draw(st.sampled_from(chosen))


@st.composite
def integer_forms(draw: st.DrawFn, hostility: float, *, minimum: int = 1) -> Form:
    n = draw(st.integers(min_value=minimum, max_value=INT32))
    benign = Form(str(n), True, n)
    small = draw(st.integers(min_value=1, max_value=4095))
    hostile = [
        Form(f"0{small:o}", False),  # YAML 1.1 octal
        Form(f"0x{small:x}", False),
        Form(f"0b{small:b}", False),
        Form(f"{small // 60}:{small % 60:02}", False) if small >= 60 else Form("1:30", False),
        Form(f"{str(n)[0]}_{str(n)[1:] or '0'}", False),
        Form(f"+{n}", False),
        Form(f"{n}.0", False),
        Form(f"{n}e0", False),
        Form(f"-{n}", False),
        Form("0", False) if minimum >= 1 else Form("-1", False),
        Form(str(INT32 + draw(st.integers(1, 10**12))), False),
        Form(f"'{n}'", False),
        Form(f'"{n}"', False),
        Form(draw(st.sampled_from([".inf", "-.inf", ".nan", "~", "null", "true", "yes", "on"]))),
        Form(f"0{n}", False),  # a leading zero: octal, or a string with an 8 or 9
        # Thousands of digits: refused before any conversion (Python converts at most
        # 4,300 decimal digits, and a conversion is quadratic in them).
        Form("9" * draw(st.integers(101, 6000)), False),
        Form("0x" + "f" * draw(st.integers(20, 6000)), False),
        Form("-" + "9" * draw(st.integers(4300, 6000)), False),
        Form(
            draw(st.sampled_from(["2024-01-01", "2024-01-01 10:00:00", "!!binary aGk=", ""])), False
        ),
    ]
    return _pick(draw, hostility, [benign], hostile)


@st.composite
def version_forms(draw: st.DrawFn, hostility: float) -> Form:
    """``version``: a plain 1, or anything YAML also reads as 1 (or as nothing like it)."""
    hostile = [
        Form(text, False)
        for text in ("0x1", "1.0", "01", "+1", "1_", "0b1", "1e0", "'1'", "2024-01-01", "true")
    ]
    hostile.append(Form("1" * draw(st.integers(20, 6000)), False))
    return _pick(draw, hostility, [Form("1", True, 1)], hostile)


#: Characters an address may not hold: C0 and C1 controls, DEL, line separators.
CONTROLS = [*(chr(c) for c in range(0x20)), "\x7f", *(chr(c) for c in range(0x80, 0xA0))]
CONTROLS += ["\u2028", "\u2029"]


@st.composite
def email_forms(draw: st.DrawFn, hostility: float) -> Form:
    """``notificationEmail``: one line of printable text, or one with a control character."""
    printable = draw(
        st.text(
            st.characters(exclude_categories=["Cs", "Cc"], exclude_characters="\u2028\u2029"),
            min_size=3,
            max_size=20,
        )
    )
    where = draw(st.integers(0, len(printable)))
    bad = draw(st.sampled_from(CONTROLS))
    hostile = [
        string_form(printable[:where] + bad + printable[where:]),
        string_form(printable + "\n"),
        Form(f"|\n      {printable.strip() or 'it@acme.example'}", False),
    ]
    hostile = [Form(f.text, False) for f in hostile]
    return _pick(draw, hostility, [string_form(printable)], hostile)


@st.composite
def name_forms(draw: st.DrawFn, hostility: float) -> Form:
    name = draw(names)
    benign = [Form(f"'{name}'", True, name), Form(f'"{name}"', True, name)]
    if yaml.safe_load(f"k: {name}")["k"] == name:  # plain, it is a string (not 0, 1e3, no)
        benign.append(Form(name, True, name))
    bad = draw(st.sampled_from(["\\n", "\\r", "\\t", "\\0", "\\e", "\\x7f", "\\x85", "\\u2028"]))
    where = draw(st.integers(0, len(name)))
    hostile = [
        Form(f"|\n      {name}", False),  # a block scalar keeps its final newline
        Form(f'"{name}{bad}"', False),
        Form(f'"{name[:where]}{bad}{name[where:]}"', False),
        Form(name.upper() if name.upper() != name else f"X{name}", False),
        Form(f"/{name}", False),
        Form(f"{name}/", False),
        Form(f"{name}//x", False),
        Form("a" * 201, False),
        Form(f"'{name} x'", False),
        Form("''", False),
        Form(f"'{name}é'", False),
    ]
    return _pick(draw, hostility, benign, hostile)


def string_form(value: str) -> Form:
    """``value`` as a YAML double-quoted scalar: what YAML may not hold raw (controls,
    DEL, C1, BOM) escaped."""
    quoted = []
    for char in value:
        code = ord(char)
        if char in '"\\':
            quoted.append("\\" + char)
        elif 0x20 <= code < 0x7F or (code >= 0xA0 and char not in "\ufeff\u2028\u2029"):
            quoted.append(char)
        elif code <= 0xFF:
            quoted.append(f"\\x{code:02x}")
        else:
            quoted.append(f"\\u{code:04x}")
    return Form('"' + "".join(quoted) + '"', True, value)


@dataclass
class Document:
    """A declarations document written value by value, and what it must load as."""

    lines: list[str] = field(default_factory=list)
    valid: bool = True
    purchases: list[dict[str, Any]] = field(default_factory=list)
    moves: list[tuple[str, str]] = field(default_factory=list)

    def put(self, indent: str, key: str, form: Form) -> Any:
        self.lines.append(f"{indent}{key}: {form.text}")
        self.valid &= form.valid
        return form.value

    @property
    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


@st.composite
def documents(draw: st.DrawFn) -> Document:
    doc = Document([])
    # Half the documents are wholly benign; the others have hostile values here and there.
    hostility = draw(st.sampled_from([0.0, 0.0, 0.1, 0.3]))
    doc.put("", "version", draw(version_forms(hostility)))
    shared_tenant = draw(st.none() | integer_forms(hostility))
    if shared_tenant is not None:
        doc.lines.append("defaults:")
        tenant_default = doc.put("  ", "customerTenantId", shared_tenant)
    doc.lines.append("purchases:")
    seen: set[str] = set()
    for _ in range(draw(st.integers(0, 4))):
        name = draw(name_forms(hostility))
        if name.valid and name.value in seen:
            continue
        first = f"  - name: {name.text}"
        doc.lines.append(first)
        doc.valid &= name.valid
        seen.add(name.value)
        indent = "    "
        entry: dict[str, Any] = {"name": name.value}
        entry["quantity"] = doc.put(indent, "quantity", draw(integer_forms(hostility)))
        entry["productId"] = doc.put(indent, "productId", string_form(draw(safe_text)))
        entry["skuId"] = doc.put(indent, "skuId", string_form(draw(safe_text)))
        if shared_tenant is None or draw(st.booleans()):
            entry["customerTenantId"] = doc.put(
                indent, "customerTenantId", draw(integer_forms(hostility))
            )
        else:
            entry["customerTenantId"] = tenant_default
        cycle = draw(st.sampled_from(sorted(BILLING_CYCLES)))
        entry["billingCycle"] = doc.put(indent, "billingCycle", Form(cycle, True, cycle))
        term = draw(st.sampled_from(TERM_DURATIONS))
        entry["termDuration"] = doc.put(indent, "termDuration", Form(term, True, term))
        for optional in ("productVariantId", "invoiceProfileId"):
            if draw(st.booleans()):
                entry[optional] = doc.put(indent, optional, draw(integer_forms(hostility)))
        if draw(st.booleans()):
            email = draw(email_forms(hostility))
            entry["notificationEmail"] = doc.put(indent, "notificationEmail", email)
        doc.purchases.append(entry)
    if not doc.purchases:
        doc.lines[-1] = "purchases: []"
    declared = [p["name"] for p in doc.purchases]
    if declared and doc.valid and draw(st.booleans()):
        source = draw(name_forms(hostility))
        if source.value not in declared:
            doc.lines += ["moved:", f"  - from: {source.text.replace(chr(10), chr(10) + '  ')}"]
            doc.lines.append(f"    to: {json.dumps(declared[0])}")
            doc.valid &= source.valid
            doc.moves.append((source.value, declared[0]))
    return doc


def _yaml(value: Any) -> str:
    """A value as YAML text that reads back as exactly that value (PyYAML's emitter does
    not always: it writes NEL raw in plain scalars, and reads it back as a space)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return string_form(value).text
    assert isinstance(value, dict), value
    return "{" + ", ".join(f"{_yaml(k)}: {_yaml(v)}" for k, v in value.items()) + "}"


def _written_out(declarations: Declarations) -> str:
    """The declarations as a YAML document of our own: every field, no defaults."""
    lines = ["version: 1", "purchases:" if declarations.purchases else "purchases: []"]
    for purchase in declarations.purchases:
        entry = {"name": purchase.address, **purchase.canonical()}
        del entry["address"]
        fields = [f"{key}: {_yaml(value)}" for key, value in entry.items() if value is not None]
        lines.append("  - " + "\n    ".join(fields))
    if declarations.moves:
        lines.append("moved:")
        for move in declarations.moves:
            lines.append(f"  - from: {_yaml(move.source)}\n    to: {_yaml(move.target)}")
    return "\n".join(lines) + "\n"


def _load(text: str) -> Declarations | ConfigError:
    try:
        return config.load_text(text, "fuzz.yaml")
    except ConfigError as error:
        for problem in error.problems:
            assert problem.line >= 1, problem
            assert problem.column >= 1, problem
        return error


def test_hostile_values_are_refused_and_benign_ones_load_as_written(
    scale: int, master_seed: int
) -> None:
    @seed(master_seed)
    @_settings(scale, 400)
    @given(documents())
    def check(doc: Document) -> None:
        TALLY.add("fuzz cases (declarations, written value by value)")
        loaded = _load(doc.text)
        if not doc.valid:
            assert isinstance(loaded, ConfigError), f"accepted a hostile value:\n{doc.text}"
            TALLY.add("fuzz cases (declarations, written value by value): hostile, refused")
            return
        TALLY.add("fuzz cases (declarations, written value by value): benign, loaded")
        assert isinstance(loaded, Declarations), f"refused a valid document:\n{doc.text}\n{loaded}"
        got = [p.canonical() for p in loaded.purchases]
        wanted = sorted(doc.purchases, key=lambda p: p["name"])
        assert len(got) == len(wanted)
        for have, want in zip(got, wanted, strict=True):
            assert have["address"] == want["name"]
            assert is_address(have["address"])
            for key, value in want.items():
                if key != "name":
                    assert have[key] == value, (key, doc.text)
        assert [(m.source, m.target) for m in loaded.moves] == doc.moves
        _assert_round_trip(loaded)

    check()


def _assert_round_trip(loaded: Declarations) -> None:
    again = config.load_text(_written_out(loaded), "again.yaml")
    assert [p.canonical() for p in again.purchases] == [p.canonical() for p in loaded.purchases]
    assert [(m.source, m.target) for m in again.moves] == [
        (m.source, m.target) for m in loaded.moves
    ]


FRAGMENTS = [
    "version: 1\n", "purchases:\n", "  - name: ", "acme/a", "acme/b\n", "    quantity: ",
    "010", "0x1F", "1_000", "1:30", "+7", "2147483648", "7\n", "    customerTenantId: ",
    "    productId: ", "    skuId: ", "\"0010\"\n", "0010\n", "    billingCycle: monthly\n",
    "    termDuration: P1M\n", "defaults:\n", "  customerTenantId: ", "moved:\n",
    "  - from: ", "    to: ", "&a ", "*a", "<<: ", "[", "]", "{", "}", ", ", "!!int ",
    "!!str ", "? ", "|\n", ">-\n", "\t", "\x00", "\x1b", "\u2028", "#", "'", '"', "---\n",
    "...\n", "%YAML 1.1\n", "\ufeff", "- ", "\n", "  ",
]  # fmt: skip


def test_any_text_is_declarations_or_a_config_error(scale: int, master_seed: int) -> None:
    @seed(master_seed)
    @_settings(scale, 500)
    @given(
        st.text()
        | st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=3), max_size=50).map("".join)
    )
    def check(text: str) -> None:
        TALLY.add("fuzz cases (declarations, any text)")
        loaded = _load(text)
        if isinstance(loaded, Declarations):
            for purchase in loaded.purchases:
                assert is_address(purchase.address), text
            _assert_round_trip(loaded)

    check()


@contextlib.contextmanager
def _within(seconds: int) -> Iterator[None]:
    """Fail instead of hanging (a FIFO read blocks until a writer comes)."""

    def timed_out(signum: int, frame: object) -> None:
        raise AssertionError(f"the loader took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, timed_out)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _load_tree(root: Path) -> Declarations | ConfigError:
    try:
        return config.load(root)
    except ConfigError as error:
        return error


SPECIAL = ["fifo", "zero", "directory", "dangling", "loop"]
VALID = """version: 1
purchases:
  - {name: acme/a, quantity: 1, customerTenantId: 111111, productId: CFQ7TTC0LF8R,
     skuId: "0010", billingCycle: monthly, termDuration: P1M}
"""


def test_trees_with_special_files_are_config_errors_not_hangs(
    tmp_path_factory: pytest.TempPathFactory, scale: int, master_seed: int
) -> None:
    @seed(master_seed)
    @_settings(scale, 25)
    @given(st.lists(st.sampled_from(SPECIAL), min_size=1, max_size=4), st.booleans())
    def check(kinds: list[str], nested: bool) -> None:
        TALLY.add("fuzz cases (declarations, special files)")
        root = tmp_path_factory.mktemp("tree")
        (root / "valid.yaml").write_text(VALID, encoding="utf-8")
        where = root / "sub" if nested else root
        where.mkdir(exist_ok=True)
        for number, kind in enumerate(kinds):
            path = where / f"{kind}-{number}.yaml"
            if kind == "fifo":
                os.mkfifo(path)
            elif kind == "zero":
                path.symlink_to("/dev/zero")
            elif kind == "directory":
                path.mkdir()
                (path / "inner.yml").write_text(VALID.replace("acme/a", f"acme/d{number}"))
            elif kind == "dangling":
                path.symlink_to(where / "missing.yaml")
            else:
                path.symlink_to(path)
        with _within(20):
            loaded = _load_tree(root)
        if isinstance(loaded, ConfigError):
            assert loaded.problems
        else:
            # A directory named *.yaml is walked like any other: only it is fine.
            assert set(kinds) == {"directory"}, kinds

    check()
