"""``reconciler demo``: the whole cycle against the simulator, narrated.

Each step runs the real CLI as a user would type it, in a temporary copy of the
bundled examples with the simulator's credentials exported. One apply runs as a
separate process and is killed while the API holds its first checkout, so the
next apply has to settle it from Cloud-iQ alone.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from reconciler.errors import ReconcilerError

if TYPE_CHECKING:
    from reconciler.simulator import Simulator

DECLARATIONS = "examples/customers"
#: How long the simulator holds the first checkout of the killed apply before it answers.
HOLD_SECONDS = 30.0
#: How long the killed apply may take to reach its first checkout.
START_TIMEOUT = 60.0


class _Demo:
    def __init__(self, sim: Simulator, root: Path) -> None:
        self.sim = sim
        self.root = root

    def say(self, text: str) -> None:
        click.echo(f"\n# {text}")

    def run(self, *args: str, expected: int = 0) -> None:
        from reconciler.cli import cli

        click.echo(f"\n$ reconciler {' '.join(args)}")
        code = cli.main(list(args), standalone_mode=False)
        if code != expected:
            raise ReconcilerError(
                f"demo step `reconciler {' '.join(args)}` exited {code}, not {expected}"
            )

    def killed_apply(self) -> None:
        """An apply in its own process, killed (SIGKILL) once the API has taken its first
        checkout and before it answers."""
        self.sim.hold_checkouts(HOLD_SECONDS)
        args = ["apply", DECLARATIONS, "--auto-approve"]
        click.echo(f"\n$ reconciler {' '.join(args)}")
        child = subprocess.Popen(
            [sys.executable, "-m", "reconciler", *args],
            cwd=self.root,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while not self.sim.checkouts and child.poll() is None:
            if time.monotonic() > deadline:
                child.kill()
                raise ReconcilerError("demo: the apply to kill never reached a checkout")
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
        output, _ = child.communicate()
        self.sim.hold_checkouts(0)
        click.echo(output.rstrip())
        click.echo("Killed")

    def edit(self, address: str, quantity: int) -> None:
        """Set ``address``'s quantity in the examples, as a person edits the YAML."""
        for path in sorted((self.root / DECLARATIONS).glob("*.yaml")):
            text = path.read_text(encoding="utf-8")
            pattern = re.compile(
                rf"(- name: {re.escape(address)}\n(?:    .*\n)*?    quantity: )\d+"
            )
            edited, found = pattern.subn(rf"\g<1>{quantity}", text)
            if found:
                path.write_text(edited, encoding="utf-8")
                click.echo(
                    f"\n$ # edit {path.relative_to(self.root)}: {address} quantity {quantity}"
                )
                return
        raise ReconcilerError(f"demo: {address} is not declared in the examples")


def run_demo() -> None:
    from reconciler import resources, simulator

    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    with (
        tempfile.TemporaryDirectory(prefix="reconciler-demo-") as tmp,
        simulator.Simulator() as sim,
    ):
        root = Path(tmp)
        # examples/ci holds CI templates (YAML too), not declarations.
        shutil.copytree(resources.examples_dir(), root / "examples")
        os.environ.update(sim.env())
        os.environ.pop("RECONCILER_STATE", None)
        os.chdir(root)
        try:
            click.echo(f"# In {tmp}, with the simulator on {sim.url} and its credentials exported:")
            _story(_Demo(sim, root))
        finally:
            os.chdir(saved_cwd)
            os.environ.clear()
            os.environ.update(saved_env)


def _story(demo: _Demo) -> None:
    sim = demo.sim
    demo.run("init")
    demo.run("validate", DECLARATIONS)
    demo.run("plan", DECLARATIONS)

    demo.say(
        "The runner dies (SIGKILL) while the API holds the first checkout: the licences are "
        "bought in Cloud-iQ, but apply never hears the answer."
    )
    demo.killed_apply()
    demo.say(
        "The next apply, with nobody's help: it reads Cloud-iQ first, finds that checkout "
        "made and records it, then buys the rest."
    )
    demo.run("apply", DECLARATIONS, "--auto-approve")
    demo.run("plan", DECLARATIONS, "--detailed-exitcode")

    premium = next(s for s in sim.subscriptions if s.product == "CFQ7TTC0LH18:0001")
    sim.portal_set_quantity(premium.id, premium.quantity + 5)
    demo.say(
        f"Someone adds 5 seats to subscription {premium.id} (contoso/m365-business-premium) "
        "by hand in the Cloud-iQ portal. The plan shows where they came from and plans them "
        "back down to the declaration, unless the declaration keeps them."
    )
    demo.run("plan", DECLARATIONS)
    demo.say("The team keeps them: the declaration says 90.")
    demo.edit("contoso/m365-business-premium", 90)
    demo.run("apply", DECLARATIONS, "--auto-approve")

    demo.say(
        "Two people leave. Inside Microsoft's 7-day cancellation window the seats go back "
        "(a prorated credit): the subscription is updated, nothing is bought."
    )
    demo.edit("contoso/power-bi-pro", 10)
    demo.run("apply", DECLARATIONS, "--auto-approve")

    sim.advance_clock(hours=24 * 8)
    demo.say(
        "Eight days later the window has closed: lowering seats now is a conflict that says "
        "when it becomes possible, and nothing is changed."
    )
    demo.edit("contoso/m365-business-basic", 30)
    demo.run("plan", DECLARATIONS, expected=1)
    demo.edit("contoso/m365-business-basic", 35)
    demo.run("show")
    click.echo(
        "\nDemo complete: every declared seat bought once. The checkout of the killed apply "
        "was settled by the next apply from Cloud-iQ's records (not bought again), the seats "
        "added in the portal were kept once declared, two seats went back inside the "
        "cancellation window, and a decrease outside it was refused with its reason."
    )
