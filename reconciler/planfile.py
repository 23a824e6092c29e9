"""Saved plans (``plan --out``): write, read back, and check they still apply.

A saved plan records the state's lineage and serial and a hash of the
declarations; ``apply --plan`` refuses it when any of them changed. Reads and
writes only the plan file; never the state.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from reconciler import render, resources
from reconciler.errors import PlanError
from reconciler.model import Plan


def save(path: str | os.PathLike[str], plan: Plan) -> None:
    """Write the plan atomically (a reader never sees half a plan)."""
    target = Path(path)
    text = render.plan_json(plan) + "\n"
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or ".")
    except OSError as exc:
        raise PlanError(f"cannot write plan file {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise PlanError(f"cannot write plan file {path}: {exc.strerror}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read(path: str | os.PathLike[str]) -> Plan:
    """A saved plan, or ``PlanError`` naming the file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PlanError(f"plan file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PlanError(f"plan file {path} cannot be read: {exc}") from None
    import jsonschema  # deferred: slow to import; only saved plans need it

    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(resources.schema("plan")).iter_errors(data)
    )
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path) or "top level"
        raise PlanError(f"plan file {path} is not a reconciler plan ({where}: {error.message})")
    return render.plan_from_dict(data)


def check_fresh(saved: Plan, current: Plan, path: str | os.PathLike[str]) -> None:
    """Refuse a saved plan made against another state or other declarations."""
    stale = []
    if saved.lineage != current.lineage:
        stale.append(f"state lineage {saved.lineage or '(none)'} -> {current.lineage or '(none)'}")
    if saved.serial != current.serial:
        stale.append(f"state serial {saved.serial} -> {current.serial}")
    if saved.declarations_digest != current.declarations_digest:
        stale.append("declarations changed")
    if stale:
        raise PlanError(
            f"saved plan {path} is stale ({'; '.join(stale)}); run `reconciler plan` again"
        )
    if [(c.address, c.action, c.delta) for c in saved.changes] != [
        (c.address, c.action, c.delta) for c in current.changes
    ]:
        raise PlanError(
            f"saved plan {path} does not match a fresh plan; run `reconciler plan` again"
        )
