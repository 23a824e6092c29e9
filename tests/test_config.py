"""Tests of the declarations loader (``reconciler.config``) and ``reconciler validate``.

Bad input lives in ``tests/data/invalid/NAME.yaml`` with the exact stderr of
``reconciler validate`` beside it in ``NAME.expected`` (``{path}`` stands for the
path given on the command line); ``tests/data/invalid_dirs/NAME/`` holds
directory cases the same way, with ``NAME.expected`` beside the directory.
Valid trees are under ``tests/data/valid/``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler import config, model, resources
from reconciler.cli import cli
from reconciler.errors import ConfigError, ConfigProblem
from reconciler.model import Declarations, Identity, Location, Purchase

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
EXAMPLES = ROOT / "examples"
SCHEMA_FILE = ROOT / "schemas" / "purchases.schema.json"

#: Corpus cases that show a bug in the config package, each with the reason: its test is a
#: strict xfail until the bug is fixed (then remove the entry, or the xfail fails). Each
#: expected file holds what the contract calls for.
KNOWN_BUGS: dict[str, str] = {}
KNOWN_DIR_BUGS: dict[str, str] = {}


def _corpus(folder: str, pattern: str, bugs: dict[str, str]) -> list[Any]:
    params = []
    for case in sorted((DATA / folder).glob(pattern)):
        name = case.stem if case.is_file() else case.name
        marks = [pytest.mark.xfail(strict=True, reason=bugs[name])] if name in bugs else []
        params.append(pytest.param(case, id=name, marks=marks))
    return params


INVALID_FILES = _corpus("invalid", "*.yaml", KNOWN_BUGS)
INVALID_DIRS = _corpus("invalid_dirs", "*/", KNOWN_DIR_BUGS)


def validate(path: Path | str) -> Result:
    return CliRunner().invoke(cli, ["validate", str(path)])


def assert_no_traceback(result: Result) -> None:
    if result.exc_info is not None and result.exc_info[0] is not SystemExit:
        raise AssertionError(f"validate raised {result.exception!r}") from result.exception
    assert "Traceback" not in result.stdout
    assert "Traceback" not in result.stderr


def expected_lines(expected_file: Path, path: Path | str) -> list[str]:
    return expected_file.read_text(encoding="utf-8").replace("{path}", str(path)).splitlines()


# --- the bad-input corpus ------------------------------------------------------------


def test_corpus_is_complete() -> None:
    cases = sorted((DATA / "invalid").glob("*.yaml"))
    assert len(cases) >= 24
    for case in cases:
        assert case.with_suffix(".expected").is_file(), f"{case.name} has no .expected file"
    for expected in (DATA / "invalid").glob("*.expected"):
        assert expected.with_suffix(".yaml").is_file(), f"{expected.name} has no .yaml file"
    for directory in (DATA / "invalid_dirs").glob("*/"):
        assert directory.with_suffix(".expected").is_file()
    for name in [*KNOWN_BUGS, *KNOWN_DIR_BUGS]:
        assert any(name == p.id for p in INVALID_FILES + INVALID_DIRS), f"stale bug {name}"


@pytest.mark.parametrize("case", INVALID_FILES)
def test_invalid_file(case: Path) -> None:
    result = validate(case)

    assert_no_traceback(result)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == expected_lines(case.with_suffix(".expected"), case)


@pytest.mark.parametrize("case", INVALID_DIRS)
def test_invalid_directory(case: Path) -> None:
    result = validate(case)

    assert_no_traceback(result)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == expected_lines(case.with_suffix(".expected"), case)


def test_duplicate_names_across_files_name_both_files_and_lines() -> None:
    directory = DATA / "invalid_dirs" / "dupe"

    with pytest.raises(ConfigError) as caught:
        config.load(directory)

    [problem] = caught.value.problems
    a, b = directory / "a.yaml", directory / "b.yaml"
    assert (problem.path, problem.line, problem.column) == (str(b), 11, 11)
    assert f"declared in {b}:11 and in {a}:11" in problem.message


def test_validate_takes_several_paths_as_one_set() -> None:
    customers = EXAMPLES / "customers"
    contoso, northwind = customers / "contoso.yaml", customers / "northwind.yaml"

    both = CliRunner().invoke(cli, ["validate", str(contoso), str(northwind)])
    # A file named twice, or also inside a directory named, is read once.
    again = CliRunner().invoke(cli, ["validate", str(contoso), str(customers), str(contoso)])

    assert (both.exit_code, both.stdout) == (0, "OK: 7 purchases in 2 files\n")
    assert (again.exit_code, again.stdout) == (0, "OK: 10 purchases in 3 files\n")


def test_duplicate_names_across_paths_name_both_files() -> None:
    directory = DATA / "invalid_dirs" / "dupe"
    a, b = directory / "a.yaml", directory / "b.yaml"

    alone = CliRunner().invoke(cli, ["validate", str(a)])
    together = CliRunner().invoke(cli, ["validate", str(a), str(b)])

    assert alone.exit_code == 0
    assert together.exit_code == 1
    assert f"declared in {b}:11 and in {a}:11" in together.stderr


def test_billion_laughs_is_refused_quickly() -> None:
    started = time.perf_counter()
    with pytest.raises(ConfigError) as caught:
        config.load(DATA / "invalid" / "billion_laughs.yaml")
    elapsed = time.perf_counter() - started

    assert elapsed < 1.0
    assert "refusing to expand it" in str(caught.value)


def test_wider_alias_bomb_is_refused_quickly() -> None:
    # 12 levels of 12: about 9e12 values once expanded.
    lines = ["version: 1", "defaults:", "  tags: &a0 {custom: lol}"]
    lines += [f"  x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 12)}]" for i in range(1, 13)]
    started = time.perf_counter()
    with pytest.raises(ConfigError, match="refusing to expand it"):
        config.load_text("\n".join(lines) + "\n")
    assert time.perf_counter() - started < 1.0


def test_file_not_utf8_written_by_the_test(tmp_path: Path) -> None:
    file = tmp_path / "latin1.yaml"
    file.write_bytes("version: 1\npurchases: []\n# Zürich\n".encode("latin-1"))

    result = validate(file)

    assert_no_traceback(result)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{file}:3:4: file is not valid UTF-8 (byte 0xfc); save it as UTF-8",
        "1 error in declarations",
    ]


def test_missing_path_is_an_error(tmp_path: Path) -> None:
    result = validate(tmp_path / "nowhere")

    assert_no_traceback(result)
    assert result.exit_code == 1
    assert result.stderr == f"error: no such file or directory: {tmp_path / 'nowhere'}\n"


def test_errors_of_every_file_are_reported(tmp_path: Path) -> None:
    shutil.copy(DATA / "invalid" / "quantity_zero.yaml", tmp_path / "a.yaml")
    shutil.copy(DATA / "invalid" / "version_2.yaml", tmp_path / "b.yaml")
    shutil.copy(DATA / "valid" / "single.yaml", tmp_path / "c.yaml")

    result = validate(tmp_path)

    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{tmp_path / 'a.yaml'}:4:15: purchases[0].quantity: 0 is less than the minimum of 1",
        f"{tmp_path / 'b.yaml'}:1:10: version: version 2 is not supported; the only version is 1",
        "2 errors in declarations",
    ]


BAD_SCALARS = [
    pytest.param("notificationEmail: 2024-13-45", id="impossible-date"),
    pytest.param("notificationEmail: !!timestamp soon", id="timestamp-tag"),
    pytest.param("invoiceProfileId: !!int many", id="int-tag"),
    pytest.param("invoiceProfileId: !!float many", id="float-tag"),
    pytest.param("attestationAccepted: !!bool maybe", id="bool-tag"),
    pytest.param("notificationEmail: !!binary Zürich", id="binary-tag-not-ascii"),
    pytest.param("invoiceProfileId: 0x_", id="impossible-hex"),
]
PURCHASE = """\
version: 1
purchases:
  - name: acme/m365-basic
    quantity: 20
    customerTenantId: 111111
    productId: CFQ7TTC0LF8R
    skuId: "0010"
    billingCycle: monthly
    termDuration: P1M
"""


@pytest.mark.parametrize("line", BAD_SCALARS)
def test_unconstructable_scalar_is_a_located_config_error(line: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config.load_text(PURCHASE + f"    {line}\n", "f.yaml")

    [problem] = caught.value.problems
    key = line.split(":")[0]
    assert (problem.line, problem.column) == (10, len(key) + 7)
    assert problem.json_path == f"purchases[0].{key}"


def test_unconstructable_scalar_messages() -> None:
    def message(line: str) -> str:
        with pytest.raises(ConfigError) as caught:
            config.load_text(PURCHASE + f"    {line}\n", "f.yaml")
        [problem] = caught.value.problems
        return problem.message

    assert message("notificationEmail: 2024-02-30") == (
        "2024-02-30 is read by YAML as a date but is not a valid one; "
        'quote it: notificationEmail: "2024-02-30"'
    )
    assert message("invoiceProfileId: !!int many") == (
        "'many' is not a valid integer, as its tag !!int says; fix it or drop the tag"
    )
    assert message("invoiceProfileId: &id !!int many").startswith("'many' is not a valid integer")


DEEP_TEXTS = [
    pytest.param("'version: 1\\npurchases: ' + '[' * 50_000 + ']' * 50_000", id="flow"),
    pytest.param("'version: 1\\npurchases: ' + '{a: ' * 50_000 + '}' * 50_000", id="flow-mapping"),
    pytest.param("'version: 1\\npurchases:\\n  ' + '- ' * 50_000 + 'x'", id="block-sequences"),
    pytest.param("'version: 1\\npurchases:\\n  ' + '? ' * 50_000 + 'x'", id="explicit-keys"),
]


@pytest.mark.parametrize("expression", DEEP_TEXTS)
def test_very_deep_nesting_is_refused_without_crashing(tmp_path: Path, expression: str) -> None:
    code = (
        "import time\n"
        "from reconciler import config\n"
        "from reconciler.errors import ConfigError\n"
        "started = time.perf_counter()\n"
        "try:\n"
        f"    config.load_text({expression})\n"
        "except ConfigError as exc:\n"
        "    print(exc)\n"
        "print(f'{time.perf_counter() - started:.3f}')\n"
    )
    # A subprocess, because libyaml's composer, given this, overflows the C stack.
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    *lines, elapsed = done.stdout.splitlines()
    assert lines[0].startswith("<string>:")
    # libyaml 0.2.6 and later refuse such depth in the parser, before our own check.
    assert lines[0].endswith(
        (": nesting is deeper than 64 levels", "exceeded maximum nesting depth")
    ), lines[0]
    assert lines[1:] == ["1 error in declarations"]
    assert float(elapsed) < 1.0


def test_deep_nesting_is_located_at_the_first_value_too_deep() -> None:
    # Walked event by event (many '['), composed and built (few): the same problem.
    few = "version: 1\npurchases: " + "[" * 70 + "]" * 70 + "\n"
    many = few + "padding: " + "[]" * config.FLOW_OPENERS_GATE + "\n"
    path = "purchases" + "[0]" * 63
    for text in (few, many):
        with pytest.raises(ConfigError) as caught:
            config.load_text(text, "f.yaml")
        assert [str(p) for p in caught.value.problems] == [
            f"f.yaml:2:75: {path}: nesting is deeper than 64 levels"
        ]


def test_deep_block_nesting_is_one_error() -> None:
    lines = ["version: 1", "purchases:"]
    lines += [" " * (level + 1) + "-" for level in range(70)]

    with pytest.raises(ConfigError) as caught:
        config.load_text("\n".join(lines) + "\n", "f.yaml")

    [problem] = caught.value.problems
    assert (problem.line, problem.column) == (66, 65)
    assert problem.message == "nesting is deeper than 64 levels"


def _flow_purchases(count: int) -> str:
    """A valid file of ``count`` purchases, three flow mappings each."""
    lines = ["version: 1", "defaults:", "  customerTenantId: 1", "  productId: P"]
    lines += ['  skuId: "S"', "  billingCycle: monthly", "  termDuration: P1M", "purchases:"]
    lines += [
        f"  - {{name: p{i}, quantity: 1, tags: {{costCenter: IT}}, provisioningContext: {{}}}}"
        for i in range(count)
    ]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("count", "walks"),
    [(config.FLOW_OPENERS_GATE // 3, 0), (config.FLOW_OPENERS_GATE // 3 + 1, 1)],
    ids=["below-the-gate", "past-the-gate"],
)
def test_only_a_file_with_signs_of_deep_nesting_is_walked_event_by_event(
    monkeypatch: pytest.MonkeyPatch, count: int, walks: int
) -> None:
    walk = config.compose.Composer._too_deep_events
    calls = []

    def spy(parser: Any, text: str) -> bool:
        calls.append(text)
        return walk(parser, text)

    monkeypatch.setattr(config.compose.Composer, "_too_deep_events", spy)

    declarations = config.load_text(_flow_purchases(count))

    assert len(declarations.purchases) == count
    assert len(calls) == walks


def test_control_character_after_non_ascii_text_is_located() -> None:
    # libyaml counts the position in bytes of UTF-8: é takes two.
    with pytest.raises(ConfigError) as caught:
        config.load_text("version: 1 # Zürich\npurchases: []\n# ééé\x07\n", "f.yaml")

    assert str(caught.value).splitlines() == [
        "f.yaml:3:6: YAML syntax error: unacceptable character #x0007: "
        "control characters are not allowed",
        "1 error in declarations",
    ]


def test_float_integers_are_refused_in_defaults_too() -> None:
    text = PURCHASE.replace("    customerTenantId: 111111\n", "").replace(
        "purchases:", "defaults:\n  customerTenantId: 111111.0\npurchases:"
    )

    with pytest.raises(ConfigError) as caught:
        config.load_text(text, "f.yaml")

    assert [str(p) for p in caught.value.problems] == [
        "f.yaml:3:21: defaults.customerTenantId: 111111.0 is not of type 'integer'; write 111111"
    ]


def test_collection_with_an_unsupported_tag() -> None:
    text = PURCHASE + "    tags: !!set {costCenter}\n"

    with pytest.raises(ConfigError) as caught:
        config.load_text(text, "f.yaml")

    assert [str(p) for p in caught.value.problems] == [
        "f.yaml:10:11: purchases[0].tags: unsupported YAML tag !!set"
    ]


def test_nested_merge_keys() -> None:
    text = """\
version: 1
purchases:
  - &tenant
    name: acme/m365-basic
    customerTenantId: 111111
    billingCycle: monthly
    termDuration: P1M
    productId: CFQ7TTC0LF8R
    skuId: "0010"
    quantity: 20
  - &product
    <<: *tenant
    name: acme/m365-basic-annual
    billingCycle: annual
    termDuration: P1Y
  - <<: *product
    name: acme/m365-basic-annual-2
    quantity: 2
"""
    declarations = config.load_text(text)

    last = declarations.by_address()["acme/m365-basic-annual-2"]
    assert last.identity == Identity(111111, "CFQ7TTC0LF8R", "0010", "annual", "P1Y")
    assert last.quantity == 2


def test_merge_precedence_is_pyyaml_s() -> None:
    # Own keys win over merged ones; of merged mappings, the earlier wins; a merged
    # mapping's own keys win over those it merges itself.
    text = """\
version: 1
purchases:
  - &one {name: a, quantity: 1, customerTenantId: 1, productId: A, skuId: "S",
          billingCycle: monthly, termDuration: P1M}
  - &two {name: b, quantity: 2, productId: B, <<: *one}
  - &three {name: c, quantity: 3, productId: C, skuId: "T", customerTenantId: 3,
            billingCycle: annual, termDuration: P1Y}
  - {<<: [*two, *three], name: d}
  - {<<: [*three, *two], name: e}
  - {<<: {<<: [*three, *one], quantity: 9}, name: f, productId: F}
"""
    # What the YAML merge-key spec says (and PyYAML 6.0.3 does; 6.0.4 differs for d).
    spec = [
        ("a", 1, 1, "A", "S", "monthly", "P1M"),
        ("b", 2, 1, "B", "S", "monthly", "P1M"),
        ("c", 3, 3, "C", "T", "annual", "P1Y"),
        ("d", 2, 1, "B", "S", "monthly", "P1M"),
        ("e", 3, 3, "C", "T", "annual", "P1Y"),
        ("f", 9, 3, "F", "T", "annual", "P1Y"),
    ]
    fields = ("name", "quantity", "customerTenantId", "productId", "skuId")
    pyyaml = [
        dict(zip((*fields, "billingCycle", "termDuration"), row, strict=True)) for row in spec
    ]

    declarations = config.load_text(text)

    loaded = {
        p.address: {"name": p.address, "quantity": p.quantity, **p.identity.as_dict()}
        for p in declarations.purchases
    }
    for expected in pyyaml:
        assert loaded[expected["name"]] == {"type": "subscription", **expected}


def test_two_merge_keys_in_one_mapping_are_a_duplicate_key() -> None:
    text = PURCHASE + "  - <<: *first\n    <<: *first\n    name: acme/other\n"
    text = text.replace("  - name: acme/m365-basic", "  - &first\n    name: acme/m365-basic")

    with pytest.raises(ConfigError) as caught:
        config.load_text(text, "f.yaml")

    assert [str(p) for p in caught.value.problems] == [
        "f.yaml:12:5: purchases[1]: duplicate key '<<' (first at line 11); "
        "merge several mappings with '<<: [*a, *b]'"
    ]


def test_placeholders_are_not_schema_checked_but_their_neighbours_are() -> None:
    text = PURCHASE.replace("quantity: 20", "quantity: 0") + "    notificationEmail: !email x\n"

    with pytest.raises(ConfigError) as caught:
        config.load_text(text, "f.yaml")

    assert [str(p) for p in caught.value.problems] == [
        "f.yaml:4:15: purchases[0].quantity: 0 is less than the minimum of 1",
        "f.yaml:10:24: purchases[0].notificationEmail: unsupported YAML tag !email",
    ]


# --- what YAML reads is what was written; bounds; special files ------------------------

#: Where a field of PURCHASE stands when ``_with_field`` sets it: (line, column).
FIELD_PLACES = {
    "quantity": (4, 15),
    "customerTenantId": (5, 23),
    "productVariantId": (10, 23),
    "invoiceProfileId": (10, 23),
}


def _with_field(name: str, raw: str) -> str:
    """PURCHASE with ``name`` written as ``raw``, in place or on a line of its own."""
    for line in PURCHASE.splitlines():
        if line.strip().startswith(f"{name}:"):
            return PURCHASE.replace(line, f"    {name}: {raw}")
    return PURCHASE + f"    {name}: {raw}\n"


def _problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        config.load_text(text, "f.yaml")
    return [str(p) for p in caught.value.problems]


ODD_INTEGERS = [
    pytest.param("010", 8, id="octal"),
    pytest.param("0x10", 16, id="hex"),
    pytest.param("0b101", 5, id="binary"),
    pytest.param("1:30", 90, id="sexagesimal"),
    pytest.param("1_0", 10, id="underscore"),
    pytest.param("+5", 5, id="plus-sign"),
]


@pytest.mark.parametrize("name", config.INTEGER_FIELDS)
@pytest.mark.parametrize(("raw", "read"), ODD_INTEGERS)
def test_integer_fields_take_plain_decimal_digits_only(name: str, raw: str, read: int) -> None:
    line, column = FIELD_PLACES[name]

    assert _problems(_with_field(name, raw)) == [
        f"f.yaml:{line}:{column}: purchases[0].{name}: {raw} is read by YAML as the number "
        f"{read}; write a plain decimal number"
    ]


def test_an_odd_integer_is_said_once_even_when_the_schema_refuses_its_number() -> None:
    assert _problems(_with_field("quantity", "-0x3")) == [
        "f.yaml:4:15: purchases[0].quantity: -0x3 is read by YAML as the number -3; "
        "write a plain decimal number"
    ]
    assert _problems(_with_field("quantity", "0x100000000")) == [
        "f.yaml:4:15: purchases[0].quantity: 0x100000000 is read by YAML as the number "
        "4294967296; write a plain decimal number"
    ]


def test_an_odd_integer_where_no_key_may_be_is_said_once() -> None:
    text = PURCHASE.replace("purchases:", "defaults:\n  quantity: 010\npurchases:")

    assert _problems(text) == [
        "f.yaml:3:3: defaults.quantity: 'quantity' cannot have a default; set it on each purchase"
    ]


def test_0o_is_not_an_integer_in_yaml_1_1() -> None:
    assert _problems(_with_field("quantity", "0o10")) == [
        "f.yaml:4:15: purchases[0].quantity: '0o10' is not of type 'integer'"
    ]


def test_plain_decimal_integers_load_as_written() -> None:
    text = _with_field("customerTenantId", "333333").replace("quantity: 20", "quantity: 10")
    text += "    productVariantId: 2622144\n    invoiceProfileId: 7\n"

    [purchase] = config.load_text(text).purchases

    assert (purchase.quantity, purchase.identity.customer_tenant_id) == (10, 333333)
    assert (purchase.product_variant_id, purchase.invoice_profile_id) == (2622144, 7)


@pytest.mark.parametrize("name", config.INTEGER_FIELDS)
def test_integer_fields_are_int32_as_in_crayon_s_api(name: str) -> None:
    line, column = FIELD_PLACES[name]

    config.load_text(_with_field(name, "2147483647"))
    assert _problems(_with_field(name, "2147483648")) == [
        f"f.yaml:{line}:{column}: purchases[0].{name}: 2147483648 is greater than the maximum "
        "of 2147483647"
    ]


NOT_NAMES = [
    pytest.param('"acme/m365-basic\\n"', "'acme/m365-basic\\n'", id="newline"),
    pytest.param('"acme/m365-basic\\r"', "'acme/m365-basic\\r'", id="carriage-return"),
    pytest.param('"acme/m365\\tbasic"', "'acme/m365\\tbasic'", id="tab"),
    pytest.param('"acme/m365-basic\\0"', "'acme/m365-basic\\x00'", id="nul"),
    pytest.param('"acme/m365-basic\\e"', "'acme/m365-basic\\x1b'", id="escape"),
]


@pytest.mark.parametrize(("written", "shown"), NOT_NAMES)
def test_a_name_is_matched_whole_and_takes_no_control_character(written: str, shown: str) -> None:
    text = PURCHASE.replace("name: acme/m365-basic", f"name: {written}")

    assert _problems(text) == [
        f"f.yaml:3:11: purchases[0].name: {shown} is not a valid name: use lower-case letters, "
        "digits, '.', '_' and '-', in segments separated by '/'"
    ]


def test_the_schema_s_name_pattern_is_the_model_s_address_pattern() -> None:
    name = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))["$defs"]["name"]

    assert name["pattern"] == f"^{model.ADDRESS_PATTERN}$(?!\\n)"
    assert name["maxLength"] == model.ADDRESS_MAX_LENGTH


@settings(max_examples=300, deadline=None)
@given(st.from_regex(r"[a-z0-9./_-]{0,12}\n?", fullmatch=True) | st.text(max_size=8))
def test_the_schema_and_the_model_agree_on_addresses(text: str) -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    name_schema = {**schema["$defs"]["name"], "$defs": schema["$defs"]}

    assert jsonschema.Draft202012Validator(name_schema).is_valid(text) == model.is_address(text)


def test_address_and_segment_checks() -> None:
    assert model.is_address("acme/m365-basic")
    assert model.is_address("a" * model.ADDRESS_MAX_LENGTH)
    assert not model.is_address("a" * (model.ADDRESS_MAX_LENGTH + 1))
    assert not model.is_address("acme/m365-basic\n")
    assert not model.is_address("acme//x")
    assert not model.is_address("")
    assert model.is_address_segment("default")
    assert not model.is_address_segment("acme/x")
    assert not model.is_address_segment("default\n")


#: Loads a path in a child process that cannot hang the suite or take the machine's
#: memory: a bug here blocks on a FIFO or reads /dev/zero forever.
LOAD_BOUNDED = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (2**30, 2**30))
from reconciler import config
from reconciler.errors import ConfigError
try:
    config.load(sys.argv[1])
except ConfigError as exc:
    print(exc)
"""


def _load_bounded(path: Path) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", LOAD_BOUNDED, str(path)],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


needs_fifo = pytest.mark.skipif(
    not hasattr(os, "mkfifo") or not Path("/dev/zero").exists(), reason="POSIX special files"
)


@needs_fifo
def test_special_files_in_the_tree_are_located_errors_not_hangs(tmp_path: Path) -> None:
    shutil.copy(DATA / "valid" / "single.yaml", tmp_path / "a.yaml")
    os.mkfifo(tmp_path / "evil.yaml")
    (tmp_path / "zero.yaml").symlink_to("/dev/zero")

    assert _load_bounded(tmp_path) == [
        f"{tmp_path / 'evil.yaml'}:1:1: not a regular file but a named pipe (FIFO); "
        "only regular files are read",
        f"{tmp_path / 'zero.yaml'}:1:1: not a regular file but a symbolic link to a "
        "character device (/dev/zero); only regular files are read",
        "2 errors in declarations",
    ]


@needs_fifo
def test_a_fifo_named_on_the_command_line_is_a_located_error(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "evil.yaml")

    assert _load_bounded(tmp_path / "evil.yaml") == [
        f"{tmp_path / 'evil.yaml'}:1:1: not a regular file but a named pipe (FIFO); "
        "only regular files are read",
        "1 error in declarations",
    ]


def test_a_file_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "huge.yaml"
    with file.open("wb") as out:  # sparse: no disk space taken
        out.truncate(config.MAX_FILE_BYTES + 1)

    assert _problems_of(file) == [
        f"{file}:1:1: file is larger than 10 MiB, the limit for one declarations file; "
        "split it into smaller files"
    ]


def _problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    return [str(p) for p in caught.value.problems]


def test_a_file_at_the_size_limit_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    file = tmp_path / "a.yaml"
    shutil.copy(DATA / "valid" / "single.yaml", file)
    monkeypatch.setattr(config.files, "MAX_FILE_BYTES", file.stat().st_size)

    assert len(config.load(file).purchases) == 1
    monkeypatch.setattr(config.files, "MAX_FILE_BYTES", file.stat().st_size - 1)
    assert _problems_of(file)[0].endswith("split it into smaller files")


def test_a_file_growing_after_its_size_was_checked_is_read_only_to_the_limit(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    file = tmp_path / "a.yaml"
    file.write_text("version: 1\n" + "#" * 1000 + "\n", encoding="utf-8")
    monkeypatch.setattr(config.files, "MAX_FILE_BYTES", 100)
    # As if the file had been small when its type and size were checked.
    monkeypatch.setattr(config.files, "_check_regular", lambda file, status: None)
    asked: list[int] = []
    read = os.read

    def counting_read(fd: int, size: int) -> bytes:
        asked.append(size)
        return read(fd, size)

    monkeypatch.setattr(config.files.os, "read", counting_read)

    assert _problems_of(file)[0].endswith("split it into smaller files")
    assert sum(asked) <= 101


# --- valid declarations -----------------------------------------------------------------


def _acme(path: Path) -> list[tuple[Purchase, Location]]:
    file = str(path / "acme.yaml")
    return [
        (
            Purchase(
                address="acme/m365-basic",
                identity=Identity(111111, "CFQ7TTC0LF8R", "0010", "monthly", "P1M"),
                quantity=20,
                product_variant_id=2622144,
                tags={"costCenter": "IT", "owner": "it@acme.example"},
                provisioning_context={"domain": "acme.example"},
                notification_email="licences@acme.example",
            ),
            Location(file, 15, 11),
        ),
        (
            Purchase(
                address="acme/power-bi-pro",
                identity=Identity(111111, "CFQ7TTC0LCHC", "0002", "annual", "P1Y", "software"),
                quantity=5,
                tags={"costCenter": "BI", "owner": "it@acme.example", "project": "Dashboards"},
                provisioning_context={"domain": "acme.example", "region": "eu"},
                attestation_accepted=True,
                notification_email="bi@acme.example",
                invoice_profile_id=7,
            ),
            Location(file, 21, 11),
        ),
    ]


def _globex(path: Path) -> list[tuple[Purchase, Location]]:
    file = str(path / "nested" / "deeper" / "globex.yml")
    identity = Identity(222222, "DZH318Z0BQ3Q", "0001", "triennial", "P3Y", "reservation")
    return [(Purchase("globex/reserved-vm", identity, 2), Location(file, 4, 11))]


def _initech(path: Path) -> list[tuple[Purchase, Location]]:
    file = str(path / "nested" / "merge.yaml")
    e3 = Identity(333333, "CFQ7TTC0LFLZ", "0002", "annual", "P1Y")
    e5 = Identity(333333, "CFQ7TTC0LFK5", "0002", "annual", "P1Y")
    sales = {"department": "Sales"}
    return [
        (
            Purchase("initech/e5-security", e5, 1, tags={**sales, "custom": "pilot"}),
            Location(file, 20, 11),
        ),
        (Purchase("initech/m365-e3", e3, 10, tags=sales), Location(file, 5, 11)),
        (Purchase("initech/m365-e3-support", e3, 3, tags=sales), Location(file, 16, 11)),
    ]


def assert_purchases(declarations: Declarations, expected: list[tuple[Purchase, Location]]) -> None:
    assert list(declarations.purchases) == [p for p, _ in expected]
    assert [p.location for p in declarations.purchases] == [loc for _, loc in expected]
    # Purchase equality ignores the location; compare the mappings' types too.
    for purchase in declarations.purchases:
        assert type(purchase.quantity) is int
        assert type(purchase.identity.customer_tenant_id) is int


def test_directory_tree(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(DATA / "valid" / "tree", tree)
    # git refuses to commit a '.git' folder, so the test makes it.
    (tree / ".git").mkdir()
    (tree / ".git" / "x.yaml").write_text("version: [\n", encoding="utf-8")

    declarations = config.load(tree)

    assert declarations.files == (
        str(tree / "acme.yaml"),
        str(tree / "nested" / "deeper" / "globex.yml"),
        str(tree / "nested" / "merge.yaml"),
    )
    assert_purchases(declarations, _acme(tree) + _globex(tree) + _initech(tree))


def test_directory_tree_through_the_cli() -> None:
    result = validate(DATA / "valid" / "tree")

    assert_no_traceback(result)
    assert (result.exit_code, result.stdout, result.stderr) == (
        0,
        "OK: 6 purchases in 3 files\n",
        "",
    )


def test_discover_skips_hidden_and_other_suffixes() -> None:
    tree = DATA / "valid" / "tree"
    assert config.discover(tree) == [
        tree / "acme.yaml",
        tree / "nested" / "deeper" / "globex.yml",
        tree / "nested" / "merge.yaml",
    ]


def test_single_file_path() -> None:
    file = DATA / "valid" / "single.yaml"

    declarations = config.load(file)

    assert declarations.files == (str(file),)
    identity = Identity(444444, "CFQ7TTC0MM8R", "0002", "one-time", "P1M")
    assert_purchases(
        declarations, [(Purchase("umbrella/visio", identity, 1), Location(str(file), 3, 11))]
    )
    result = validate(file)
    assert (result.exit_code, result.stdout) == (0, "OK: 1 purchase in 1 file\n")


def test_a_hidden_file_given_by_name_is_read() -> None:
    # Only the directory walk skips hidden files; a file named on the command line is read.
    with pytest.raises(ConfigError, match="YAML syntax error"):
        config.load(DATA / "valid" / "tree" / ".hidden.yaml")


def test_current_directory_is_not_skipped_as_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(DATA / "valid" / "tree")

    result = validate(".")

    assert (result.exit_code, result.stdout) == (0, "OK: 6 purchases in 3 files\n")


def test_load_text_matches_load() -> None:
    file = DATA / "valid" / "tree" / "acme.yaml"

    from_text = config.load_text(file.read_text(encoding="utf-8"), str(file))

    assert from_text == config.load(file)
    assert [p.location for p in from_text.purchases] == [loc for _, loc in _acme(file.parent)]


def test_empty_directory(tmp_path: Path) -> None:
    result = validate(tmp_path)

    assert (result.exit_code, result.stdout) == (0, "OK: 0 purchases in 0 files\n")


# --- examples and schema -------------------------------------------------------------


def test_validate_examples() -> None:
    # examples/ci holds CI templates (YAML too); the declarations are the customers'.
    result = validate(EXAMPLES / "customers")

    assert_no_traceback(result)
    assert (result.exit_code, result.stdout, result.stderr) == (
        0,
        "OK: 10 purchases in 3 files\n",
        "",
    )


def test_validate_defaults_to_the_current_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(EXAMPLES / "customers")

    result = CliRunner().invoke(cli, ["validate"])

    assert (result.exit_code, result.stdout) == (0, "OK: 10 purchases in 3 files\n")


EXAMPLE_FILES = sorted(EXAMPLES.rglob("*.yaml"))


@pytest.mark.parametrize("file", EXAMPLE_FILES, ids=[f.name for f in EXAMPLE_FILES])
def test_example_matches_the_json_schema(file: Path) -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))

    jsonschema.Draft202012Validator(schema).validate(yaml.safe_load(file.read_text("utf-8")))


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))

    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_loader_uses_the_top_level_schema() -> None:
    assert resources.schema("purchases") == json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def test_enum_names_map_to_the_api_integers() -> None:
    assert dict(model.BILLING_CYCLES) == {
        "monthly": 1,
        "annual": 2,
        "none": 3,
        "one-time": 4,
        "triennial": 5,
    }
    assert dict(model.PURCHASE_TYPES) == {"reservation": 1, "software": 2, "subscription": 3}


def test_schema_enums_match_the_model() -> None:
    defs = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))["$defs"]

    assert sorted(defs["billingCycle"]["enum"]) == sorted(model.BILLING_CYCLES)
    assert sorted(defs["type"]["enum"]) == sorted(model.PURCHASE_TYPES)
    assert tuple(defs["termDuration"]["enum"]) == model.TERM_DURATIONS
    assert tuple(defs["tags"]["properties"]) == model.TAG_KEYS
    purchase_fields = set(defs["purchase"]["properties"])
    # allowAdditionalSubscription acknowledges one purchase, never a whole file's.
    per_purchase = {"name", "quantity", "allowAdditionalSubscription"}
    assert set(defs["defaults"]["properties"]) == purchase_fields - per_purchase
    assert set(model.IDENTITY_FIELDS) <= purchase_fields
    assert set(config.REQUIRED_AFTER_DEFAULTS) == set(model.IDENTITY_FIELDS) - {"type"}


def test_json_path() -> None:
    assert config.json_path(()) == ""
    assert config.json_path(("purchases", 1, "quantity")) == "purchases[1].quantity"
    assert config.json_path(("defaults", "tags", "costCenter")) == "defaults.tags.costCenter"


# --- properties ------------------------------------------------------------------------

FRAGMENTS = [
    "version: 1\n",
    "version: 2\n",
    "purchases:\n",
    "defaults:\n",
    "  - name: a\n",
    "  - name: acme/m365\n",
    "    quantity: 3\n",
    "    skuId: 0010\n",
    'productId: "P"\n',
    "customerTenantId: 1\n",
    "billingCycle: monthly\n",
    "termDuration: P1M\n",
    "tags: {costCenter: IT}\n",
    "quantity: ",
    "name: ",
    "<<: ",
    "&a ",
    "*a",
    "&b ",
    "*b",
    "[",
    "]",
    "{",
    "}",
    ":",
    ": ",
    "- ",
    ",",
    "\t",
    "\n",
    "  ",
    "    ",
    "0010",
    "1.5",
    "-3",
    "null",
    "yes",
    "'",
    '"',
    "#",
    "---\n",
    "...\n",
    "? ",
    "|\n",
    ">\n",
    "%YAML 1.1\n",
    "\ufeff",
    "é",
    "\u2028",
    "\x85",
    "\x00",
    "\x07",
]
yamlish = st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=4), max_size=40).map("".join)


def _load_or_config_error(text: str) -> None:
    problems: tuple[ConfigProblem, ...] = ()
    try:
        result = config.load_text(text)
    except ConfigError as exc:
        problems = exc.problems
    else:
        assert isinstance(result, Declarations)
        return
    assert problems
    for problem in problems:
        assert problem.line >= 1
        assert problem.column >= 1


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_text_loads_or_is_a_config_error(text: str) -> None:
    _load_or_config_error(text)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(yamlish)
def test_any_yamlish_text_loads_or_is_a_config_error(text: str) -> None:
    _load_or_config_error(text)


names = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,15}(/[a-z0-9][a-z0-9._-]{0,15}){0,3}", fullmatch=True)
# PyYAML's emitter writes NEL and the Unicode line separators unescaped in single quotes,
# where its own reader folds them: that round trip is PyYAML's, not the loader's, to fix.
plain_text = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\x85\u2028\u2029"), max_size=20
)
strings = plain_text.filter(bool)
positive = st.integers(min_value=1, max_value=2**31 - 1)  # int32, as in Crayon's API
#: Any field a purchase may take from defaults, with a strategy of valid values.
FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "customerTenantId": positive,
    "productId": strings,
    "skuId": strings,
    "productVariantId": positive,
    "billingCycle": st.sampled_from(sorted(model.BILLING_CYCLES)),
    "termDuration": st.sampled_from(model.TERM_DURATIONS),
    "type": st.sampled_from(sorted(model.PURCHASE_TYPES)),
    "tags": st.dictionaries(st.sampled_from(model.TAG_KEYS), plain_text),
    "provisioningContext": st.dictionaries(plain_text, plain_text, max_size=3),
    "attestationAccepted": st.booleans(),
    # One line of printable text: no control character (category Cc), no separator.
    "notificationEmail": st.text(
        st.characters(exclude_categories=["Cs", "Cc"], exclude_characters="\u2028\u2029"),
        min_size=3,
        max_size=20,
    ),
    "invoiceProfileId": positive,
}


@st.composite
def declarations_files(draw: st.DrawFn) -> tuple[dict[str, Any], list[Purchase]]:
    """A valid declarations document and the purchases it must load as."""
    defaults = draw(st.fixed_dictionaries({}, optional=FIELDS))
    addresses = draw(st.lists(names, min_size=0, max_size=5, unique=True))
    entries: list[dict[str, Any]] = []
    expected: list[Purchase] = []
    for address in addresses:
        own = draw(st.fixed_dictionaries({}, optional=FIELDS))
        for name in config.REQUIRED_AFTER_DEFAULTS:
            if name not in own and name not in defaults:
                own[name] = draw(FIELDS[name])
        entry = {"name": address, "quantity": draw(positive), **own}
        entries.append(entry)
        merged = {**defaults, **entry}
        for name in ("tags", "provisioningContext"):
            merged[name] = {**defaults.get(name, {}), **entry.get(name, {})}
        expected.append(
            Purchase(
                address=address,
                identity=Identity(
                    merged["customerTenantId"],
                    merged["productId"],
                    merged["skuId"],
                    merged["billingCycle"],
                    merged["termDuration"],
                    merged.get("type", "subscription"),
                ),
                quantity=merged["quantity"],
                product_variant_id=merged.get("productVariantId"),
                tags=merged["tags"],
                provisioning_context=merged["provisioningContext"],
                attestation_accepted=merged.get("attestationAccepted"),
                notification_email=merged.get("notificationEmail"),
                invoice_profile_id=merged.get("invoiceProfileId"),
            )
        )
    document: dict[str, Any] = {"version": 1}
    if defaults or draw(st.booleans()):
        document["defaults"] = defaults
    if entries or draw(st.booleans()):
        document["purchases"] = entries
    return document, sorted(expected, key=lambda p: p.address)


@settings(max_examples=200, deadline=None)
@given(declarations_files(), st.booleans())
def test_valid_documents_round_trip(
    generated: tuple[dict[str, Any], list[Purchase]], flow: bool
) -> None:
    document, expected = generated
    text = yaml.safe_dump(document, default_flow_style=flow, allow_unicode=True, sort_keys=False)

    declarations = config.load_text(text, "gen.yaml")

    assert list(declarations.purchases) == expected
    assert declarations.files == ("gen.yaml",)
    lines = text.splitlines()
    for purchase in declarations.purchases:
        assert purchase.location is not None
        assert purchase.location.path == "gen.yaml"
        line = lines[purchase.location.line - 1]
        assert line[purchase.location.column - 1 :].lstrip('\x27"').startswith(purchase.address)
