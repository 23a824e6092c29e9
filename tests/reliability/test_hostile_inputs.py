"""Hostile inputs through the real CLI: declarations, state files and journals, and
database URLs that carry a password every way libpq reads one.

- **Declarations** (every command that reads them: ``validate``, ``plan``,
  ``apply``): integers of thousands of digits in any YAML form, ``version``
  written as anything but a plain 1, control characters in ``notificationEmail``,
  dates, booleans, nulls and infinities where numbers go. Each is exit 1 with
  located errors only (``PATH:LINE:COL: ...``), in YAML's words (never Python's:
  ``datetime.date(...)``, ``True``, ``None``), never a traceback.
- **State files and journals** (every command that reads a file state): numbers
  of 20 to 5,000 digits, nesting thousands deep, a serial at the largest value a
  state holds. Each is one line naming the file; the file is left as it was, and
  no journal, copy or temp file is left behind.
- **URLs** (PostgreSQL): the password in the userinfo, in ``?password=``, in
  ``?%70assword=`` (libpq decodes query keys), in ``?sslpassword=``, beside a
  multi-host list, and wrong ones in forms libpq refuses. A whole apply runs on
  each working form; every output and every file the test leaves is scanned for
  every encoded form of every password (the suite's autouse ``outputs`` scan), and
  the exactly-once invariants are checked as everywhere else.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import harness
import pytest
from click.testing import CliRunner, Result
from harness import TALLY, Outputs

from reconciler.cli import cli
from reconciler.model import Identity
from tests.pgserver import PgServer

IDENTITY = Identity(111111, "CFQ7TTC0LF8R", "0010", "monthly", "P1M")
T0 = "2026-11-26T19:00:00Z"
#: A line of a declarations error: the file, line and column, then the message.
LOCATED = re.compile(r"[^:]+\.yaml:[0-9]+:[0-9]+: .+")
PYTHON_WORDS = re.compile(r"datetime\.|(?<![\w.])(?:True|False|None|inf|nan) \b|b'")


def _run(*args: str) -> Result:
    result = CliRunner().invoke(cli, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"reconciler {' '.join(args)} crashed") from result.exception
    return result


# -- declarations ---------------------------------------------------------------------


def _purchase(**fields: str) -> str:
    base = {
        "name": "acme/a",
        "quantity": "5",
        "customerTenantId": "111111",
        "productId": "CFQ7TTC0LF8R",
        "skuId": '"0010"',
        "billingCycle": "monthly",
        "termDuration": "P1M",
        **fields,
    }
    lines = [f"{key}: {value}" for key, value in base.items()]
    return "version: 1\npurchases:\n  - " + "\n    ".join(lines) + "\n"


HOSTILE_DECLARATIONS = {
    "5000-digit tenant": _purchase(customerTenantId="7" * 5000),
    "5000-digit hex quantity": _purchase(quantity="0x" + "f" * 5000),
    "5000-digit binary quantity": _purchase(quantity="0b" + "1" * 5000),
    "long sexagesimal quantity": _purchase(quantity=":".join(["59"] * 2000)),
    "5000-digit negative variant": _purchase(productVariantId="-" + "9" * 5000),
    "5000-digit key": _purchase(**{"9" * 5000: "1"}),
    "5000-digit version": "version: " + "1" * 5000 + "\npurchases: []\n",
    "version 0x1": "version: 0x1\npurchases: []\n",
    "version 1.0": "version: 1.0\npurchases: []\n",
    "version 01": "version: 01\npurchases: []\n",
    "version +1": "version: +1\npurchases: []\n",
    "version date": "version: 2024-01-01\npurchases: []\n",
    "version true": "version: true\npurchases: []\n",
    "email with a newline": _purchase(notificationEmail='"it@acme.example\\nBcc: x@evil"'),
    "email with a final newline": _purchase(notificationEmail='"it@acme.example\\n"'),
    "email block scalar": _purchase(notificationEmail="|\n      it@acme.example"),
    "email with a tab": _purchase(notificationEmail='"it@acme\\texample"'),
    "email with NEL": _purchase(notificationEmail='"it@acme.example\\N"'),
    "email with a line separator": _purchase(notificationEmail='"it@acme\\Lexample"'),
    "email with DEL": _purchase(notificationEmail='"it@acme\\x7fexample"'),
    "email with NUL": _purchase(notificationEmail='"it@acme\\0example"'),
    "date tenant": _purchase(customerTenantId="2024-01-01"),
    "timestamp quantity": _purchase(quantity="2024-01-01 10:00:00"),
    "boolean quantity": _purchase(quantity="yes"),
    "null quantity": _purchase(quantity="~"),
    "empty quantity": _purchase(quantity=""),
    "infinite quantity": _purchase(quantity=".inf"),
    "not-a-number quantity": _purchase(quantity=".nan"),
    "binary tenant": _purchase(customerTenantId="!!binary aGk="),
    "date version in a list": _purchase(tags="[2024-01-01, true, ~]"),
    "boolean billing cycle": _purchase(billingCycle="on"),
    "date email": _purchase(notificationEmail="2024-01-01"),
    "deep nesting": "version: 1\npurchases: " + "[" * 5000 + "]" * 5000 + "\n",
}


def test_hostile_declarations_are_located_errors_in_every_command(
    tmp_path: Path, outputs: Outputs
) -> None:
    state = tmp_path / "reconciler.state.json"
    assert _run("init", "--state", str(state)).exit_code == 0
    before = state.read_bytes()
    for name, text in HOSTILE_DECLARATIONS.items():
        decl = tmp_path / "decl" / "hostile.yaml"
        decl.parent.mkdir(exist_ok=True)
        decl.write_text(text, encoding="utf-8")
        for args in (
            ("validate", str(decl)),
            ("plan", str(decl), "--state", str(state)),
            ("apply", str(decl), "--auto-approve", "--state", str(state)),
        ):
            result = _run(*args)
            outputs.record(f"{name}: {args[0]}", result.stdout, result.stderr)
            TALLY.add("hostile declarations (file x command)")
            assert (result.exit_code, result.stdout) == (1, ""), (name, args, result.output)
            *problems, count = result.stderr.splitlines()
            assert problems, (name, result.stderr)
            assert re.fullmatch(r"[0-9]+ errors? in declarations", count), (name, count)
            for line in problems:
                assert LOCATED.fullmatch(line), (name, line)
                assert len(line) < 600, (name, line[:200])
                assert not PYTHON_WORDS.search(line), (name, line)
    assert state.read_bytes() == before


# -- state files and journals ---------------------------------------------------------


def _state(**changes: object) -> bytes:
    document: dict[str, object] = {
        "version": 1,
        "lineage": "3e1c2f3a-0000-4000-8000-000000000000",
        "serial": 2,
        "purchases": {
            "acme/a": {
                **IDENTITY.as_dict(),
                "quantity": 5,
                "checkouts": [{"externalOrderId": "ord-1", "quantity": 5, "time": T0}],
            }
        },
        "pending": {},
        **changes,
    }
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()


def _digits(count: int) -> bytes:
    return b"8" * count


HOSTILE_STATE_FILES = {
    "serial 2**70": _state(serial=2**70),
    "5000-digit serial": _state().replace(b'"serial": 2', b'"serial": ' + _digits(5000)),
    "20-digit serial": _state().replace(b'"serial": 2', b'"serial": ' + _digits(20)),
    "serial past a bigint": _state(serial=2**63),
    "5000-digit quantity": _state().replace(
        b'"quantity": 5,', b'"quantity": ' + _digits(5000) + b","
    ),
    "negative 5000-digit tenant": _state().replace(
        b'"customerTenantId": 111111', b'"customerTenantId": -' + _digits(5000)
    ),
    "quantity past an integer": _state().replace(b'"quantity": 5,', b'"quantity": 2147483648,'),
    "5000-digit float": _state().replace(b'"serial": 2', b'"serial": ' + _digits(5000) + b".5"),
    "huge exponent": _state().replace(b'"serial": 2', b'"serial": 1e999999'),
    "deep arrays": b"[" * 200_000 + b"]" * 200_000,
    "deep objects": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    "deep pending": _state().replace(
        b'"pending": {}', b'"pending": ' + b"[" * 50_000 + b"]" * 50_000
    ),
    "long unknown key": _state().replace(
        b'"pending": {}', b'"pending": {}, "' + b"k" * 100_000 + b'": 1'
    ),
    "long duplicate key": _state().replace(
        b'"pending": {}', b'"pending": {"' + b"d" * 100_000 + b'": 1, "' + b"d" * 100_000 + b'": 1}'
    ),
    "long address": _state()
    .replace(b'"acme/a"', b'"' + b"a" * 100_000 + b'"')
    .replace(b'"quantity": 5,', b'"quantity": 0,'),
}

#: Every command that reads a file state, with what it needs besides --state.
STATE_COMMANDS = [
    ("plan", "{decl}"),
    ("plan", "{decl}", "--json"),
    ("apply", "{decl}", "--auto-approve"),
    ("show",),
    ("show", "--json"),
    ("state", "list"),
    ("state", "show", "acme/a"),
    ("state", "pull"),
    ("state", "rm", "acme/a", "-y"),
    ("state", "mv", "acme/a", "acme/b", "-y"),
    ("state", "import", "acme/n", "--quantity", "1", "--config", "{decl}", "-y"),
    ("state", "resolve", "acme/a", "--purchased"),
    ("state", "migrate", "--to", "{copy}"),
]


def _declared(directory: Path) -> Path:
    decl = directory / "decl.yaml"
    decl.write_text(
        json.dumps(
            {
                "version": 1,
                "purchases": [
                    {"name": "acme/a", "quantity": 5, **IDENTITY.as_dict()},
                    {"name": "acme/n", "quantity": 1, **IDENTITY.as_dict()},
                ],
            }
        ),
        encoding="utf-8",
    )
    return decl


def _refused_by_every_command(
    work: Path, state: Path, name: str, outputs: Outputs, expect: str | None = None
) -> None:
    decl = _declared(work)
    content = state.read_bytes()
    journal = state.with_name(state.name + ".journal")
    journal_content = journal.read_bytes() if journal.exists() else None
    for command in STATE_COMMANDS:
        args = [a.format(decl=decl, copy=work / "copy.json") for a in command]
        result = _run(*args, "--state", str(state))
        outputs.record(f"{name}: {' '.join(command[:2])}", result.stdout, result.stderr)
        TALLY.add("hostile state files (file x command)")
        assert (result.exit_code, result.stdout) == (1, ""), (name, args, result.output)
        assert result.stderr.count("\n") == 1, (name, args, result.stderr[:300])
        assert len(result.stderr) < 2000, (name, args, result.stderr[:300])
        if expect is None:
            assert result.stderr.startswith(f"error: state file {state} "), (name, args)
        else:
            assert expect in result.stderr, (name, args, result.stderr)
        assert state.read_bytes() == content, (name, args)
        if journal_content is None:
            assert not journal.exists(), (name, args, "a journal was left behind")
        else:
            assert journal.read_bytes() == journal_content, (name, args)
        left = sorted(p.name for p in work.iterdir())
        assert "copy.json" not in left, (name, args)
        assert not [n for n in left if n.endswith(".tmp")], (name, args, left)


def test_hostile_state_files_are_refused_by_name_by_every_command(
    tmp_path: Path, outputs: Outputs
) -> None:
    for number, (name, content) in enumerate(HOSTILE_STATE_FILES.items()):
        work = tmp_path / f"state-{number}"
        work.mkdir()
        state = work / "reconciler.state.json"
        state.write_bytes(content)
        _refused_by_every_command(work, state, name, outputs)


def test_hostile_journal_lines_are_refused_by_name_by_every_command(
    tmp_path: Path, outputs: Outputs
) -> None:
    """A journal line in the middle with a number of thousands of digits, or nested
    thousands deep, is refused naming the journal and the line."""
    hostile = {
        "5000-digit serial": b'{"address":"acme/b","lineage":"L","op":"remove_pending",'
        b'"pending":null,"serial":' + _digits(5000) + b"}",
        "deep nesting": b'{"address":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    }
    for number, (name, line) in enumerate(hostile.items()):
        work = tmp_path / f"journal-{number}"
        work.mkdir()
        state = work / "reconciler.state.json"
        # A state file marked for a journal without checksums (an older reconciler's),
        # whose journal's first line is hostile and is followed by another.
        marked = json.loads(_state())
        marked["journal"] = "reconciler.state.json.journal"
        state.write_text(json.dumps(marked, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        journal = state.with_name(state.name + ".journal")
        journal.write_bytes(line + b"\n" + line + b"\n")
        _refused_by_every_command(
            work, state, f"journal: {name}", outputs, expect=f"state journal {journal} line 1 "
        )


def test_a_state_at_the_largest_serial_refuses_one_more_write_and_starts_no_journal(
    tmp_path: Path, outputs: Outputs
) -> None:
    state = tmp_path / "reconciler.state.json"
    state.write_bytes(_state(serial=2**63 - 1))
    before = state.read_bytes()
    result = _run("state", "rm", "acme/a", "-y", "--state", str(state))
    outputs.record("largest serial: state rm", result.stdout, result.stderr)
    assert result.exit_code == 1
    assert "serial: expected an integer <= 9223372036854775807" in result.stderr
    assert state.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "reconciler.state.json",
        "reconciler.state.json.lock",
    ]


# -- URLs -----------------------------------------------------------------------------


def test_no_url_form_of_a_database_password_leaks(
    tmp_path: Path,
    outputs: Outputs,
    pg_server: PgServer,
    pg_database: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A whole apply on each URL form that carries the real password, then the state
    commands; wrong passwords in forms that fail. Everything is scanned for both."""
    secret = pg_server.password
    wrong = "wr0ng-pw-" + secret[:6][::-1]
    outputs.use_secret("database password", secret)
    outputs.use_secret("wrong database password", wrong)
    monkeypatch.delenv("PGPASSWORD")  # only the URL carries a password
    env = {k: v for k, v in os.environ.items() if k != "PGPASSWORD"}
    address, db = pg_database.split("@", 1)[1].split("/", 1)
    working = {
        "userinfo": f"postgresql://reconciler:{secret}@{address}/{db}",
        "query": f"postgresql://reconciler@{address}/{db}?password={secret}&connect_timeout=5",
        "encoded key": f"postgres://reconciler@{address}/{db}?%70assword={secret}",
        "sslpassword": f"postgresql://reconciler:{secret}@{address}/{db}?sslpassword={secret}",
        "multi-host": f"postgresql://reconciler:{secret}@127.0.0.1:1,{address}/{db}",
    }
    failing = {
        "wrong encoded key": f"postgresql://reconciler@{address}/{db}?%70assword={wrong}",
        "double-encoded key": f"postgresql://reconciler@{address}/{db}?%2570assword={wrong}",
        "upper-case key": f"postgresql://reconciler@{address}/{db}?PASSWORD={wrong}",
        "port 99999": f"postgresql://reconciler:{wrong}@127.0.0.1:99999/{db}",
        "multi-host, wrong": f"postgresql://reconciler:{wrong}@{address},{address}/{db}",
    }
    for number, (form, url) in enumerate(working.items()):
        world = harness.pg_world(tmp_path / f"url-{number}", outputs, env, url, f"url-{number}")
        try:
            world.cli("init", *world.state_args)
            world.declare(harness.purchases(3, tenants=[100001], prefix=f"u{number}-"))
            world.apply()
            world.verify(f"url form {form}", converged=True)
            for args in (
                ("show",),
                ("state", "list"),
                ("state", "history"),
                ("state", "migrate", "--to", str(world.root / "copy.json")),
                ("plan", str(world.decl), "--detailed-exitcode"),
            ):
                world.cli(*args, *world.state_args)
            TALLY.add("URL forms of a password (whole apply, scanned)")
        finally:
            world.stop()
    for form, url in failing.items():
        for args in (("init",), ("show",), ("state", "pull")):
            result = _run(*args, "--state", url)
            outputs.record(f"url form {form}: {args[0]}", result.stdout, result.stderr)
            assert result.exit_code == 1, (form, result.output)
            assert result.stderr.startswith("error: cannot connect to "), (form, result.stderr)
            TALLY.add("URL forms of a password (refused, scanned)")
