"""What the tests share; each module says what it holds.

paths         the repository's files: ROOT, EXAMPLES, CUSTOMERS, DATA, README, schema()
times         T0 and AT, the instant every recorded write happens at
records       identities (TENANT, BASIC, PREMIUM, ANNUAL) and builders of model records
readings      builders of the API's read records (subscriptions, orders, asset orders)
declarations  builders and an independent reader of declarations files
states        builders and readers of state files; their journal and lock file
cli           ``run``: the real CLI in-process, failing on any traceback
processes     child processes: scripts, lock holders, waiting on them
simulator     simulator fixtures, the end-to-end harnesses and the exactly-once oracle
fixtures      the fixtures ``tests/conftest.py`` makes visible to every test
fakes         in-memory fakes of the reconciler's roles
"""
