"""The backend table (``reconciler.state.backends``): which backend a ``--state``
value names, what each can do, how its location is shown, and ``open_store``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from reconciler.errors import StateError
from reconciler.state import JsonFileStateStore, backend_for, open_store
from reconciler.state.backends import BACKENDS, FILE, POSTGRESQL, StoreOptions
from reconciler.state.postgres import PostgresStateStore

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("location", "backend"),
    [
        ("postgresql://reconciler@db.internal/licences", POSTGRESQL),
        ("postgres://reconciler@db.internal/licences", POSTGRESQL),
        ("postgresql://u:pw@h1:5432,h2:5432/db?target_session_attrs=read-write", POSTGRESQL),
        ("reconciler.state.json", FILE),
        ("/var/lib/reconciler/state.json", FILE),
        ("./postgresql:/state.json", FILE),
        ("postgresql.state.json", FILE),
    ],
)
def test_a_location_names_its_backend(location: str, backend: object) -> None:
    assert backend_for(location) is backend


def test_each_backend_says_what_it_can_do() -> None:
    assert [b.name for b in BACKENDS] == ["postgresql", "file"]
    assert BACKENDS[-1].schemes == (), "the fallback (file paths) comes last"
    assert (POSTGRESQL.has_workspaces, POSTGRESQL.keeps_history, POSTGRESQL.comment_safe) == (
        True,
        True,
        False,
    )
    assert (FILE.has_workspaces, FILE.keeps_history, FILE.comment_safe) == (False, False, True)


def test_a_location_is_shown_without_its_password() -> None:
    url = "postgresql://reconciler:s3cret@db:5432/licences?sslpassword=k3y&sslmode=require"
    assert backend_for(url).show(url) == (
        "postgresql://reconciler:***@db:5432/licences?sslpassword=***&sslmode=require"
    )
    assert backend_for("state.json").show("state.json") == "state.json"


def test_open_store_builds_the_store_of_the_backend(tmp_path: Path) -> None:
    path = str(tmp_path / "state.json")
    assert isinstance(open_store(path), JsonFileStateStore)
    url = "postgresql://reconciler:s3cret@127.0.0.1:1/db"
    store = open_store(url, workspace="acme", lock_timeout=5)
    assert isinstance(store, PostgresStateStore)
    assert store.location == "postgresql://reconciler:***@127.0.0.1:1/db (workspace acme)"
    assert store.workspace == "acme"


def test_a_state_file_has_no_workspaces(tmp_path: Path) -> None:
    path = str(tmp_path / "state.json")
    with pytest.raises(StateError) as caught:
        open_store(path, workspace="acme")
    assert str(caught.value) == (
        f"a state file holds one state, so --workspace acme has nothing to select in {path}; "
        "--workspace needs a postgresql:// state"
    )
    with pytest.raises(StateError, match="--workspace needs a postgresql:// state"):
        FILE.open(path, StoreOptions(workspace="acme"))
    assert not (tmp_path / "state.json").exists()


#: Where the CLI still tells a database URL apart by itself; each goes once it asks
#: ``backend_for`` instead (remove the file from this set when it does).
_CLI_COPIES: set[str] = set()


def test_the_database_scheme_is_told_apart_in_one_place() -> None:
    scheme_test = re.compile(r"""["']postgres(?:ql)?://["']\s*[,)]""")
    found = {
        str(path.relative_to(ROOT))
        for path in (ROOT / "reconciler").rglob("*.py")
        if scheme_test.search(path.read_text(encoding="utf-8"))
    }
    assert found - _CLI_COPIES == {"reconciler/state/backends.py"}


def test_no_command_imports_pytest_or_the_contract_suite(tmp_path: Path) -> None:
    """The contract suite ships in the package for backends to test against; it imports
    pytest, so no command may import it."""
    import subprocess
    import sys

    state = str(tmp_path / "state.json")
    decl = str(ROOT / "examples" / "customers")
    probe = (
        "import sys\n"
        "from reconciler.cli import main\n"
        "sys.argv = ['reconciler', *sys.argv[1:]]\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "loaded = [m for m in sys.modules if m == 'pytest' or m.endswith('.contract')]\n"
        "print('LOADED', loaded, file=sys.stderr)\n"
    )
    for args in (
        ("init", "--state", state),
        ("plan", decl, "--state", state),
        ("state", "list", "--state", state),
        ("state", "rm", "nothing/here", "-y", "--state", state),
    ):
        done = subprocess.run(
            [sys.executable, "-c", probe, *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert "LOADED []" in done.stderr, (args, done.stderr)
