"""commands: one function per use case, with its collaborators passed in.

``plan`` (plan and verify), ``apply`` (the preflight refusals and the run),
``refresh`` (read Cloud-iQ back, record what it proves), ``adopt`` (``reconciler
import``) and ``state`` (inspect and repair). Each function takes what it works with (the
declarations, a store or writer, an API client, a clock, an id source, an event
sink) as arguments, so tests can hand it fakes. These modules decide what is
allowed and what happens; they never print, never read the environment, never
import click and never build a real store or client: that is ``cli``'s job.
"""
