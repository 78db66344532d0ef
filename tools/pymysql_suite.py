"""PyMySQL's own test suite, run twice on a throwaway MariaDB: with plain PyMySQL, then
with every ``pymysql.connect`` of the tests going through resilient_dbapi. Prints the
tests that fail only through resilient_dbapi (see README, "Drop-in fidelity").

    python tools/pymysql_suite.py /path/to/PyMySQL-checkout [TEST ...]

With TEST ids (as printed, e.g. pymysql/tests/test_connection.py::TestConnection::
test_defer_connect), runs only those through resilient_dbapi and shows pytest's report.

The PyPI sdist has no tests: clone https://github.com/PyMySQL/PyMySQL (a tag near the
installed version). Needs the network for the clone only; run it before each release.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pymysql

from resilient_dbapi.testing.servers import MariaDBServer

# Binds the tests' pymysql.connect to resilient_dbapi when MODE=resilient.
CONFTEST = """
import os
import pymysql
import resilient_dbapi

if os.environ.get("MODE") == "resilient":
    _real = pymysql.connections.Connection

    def connect(*args, **kwargs):
        return resilient_dbapi.connect(_real, *args, **kwargs)

    pymysql.connect = pymysql.Connect = connect
"""


def _failed(root: Path, mode: str, only: list[str]) -> tuple[set[str], str]:
    pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider"]
    done = subprocess.run(
        [*pytest, "-o", "addopts=", "-W", "default", *(only or ["pymysql/tests"])],
        cwd=root,
        env={**os.environ, "MODE": mode, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    if only:
        print(done.stdout, done.stderr)
    failed = set(re.findall(r"^FAILED (\S+)", done.stdout, re.MULTILINE))
    return failed, done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    only = sys.argv[2:]
    tests = Path(sys.argv[1]) / "pymysql" / "tests"
    if not tests.is_dir():
        sys.exit(f"{tests} is not a directory: give the root of a PyMySQL checkout")
    with tempfile.TemporaryDirectory() as tmp, MariaDBServer() as server:
        root = Path(tmp)
        # The installed PyMySQL with the checkout's tests inside: the tests import
        # pymysql.tests, and must meet the PyMySQL that resilient_dbapi wraps.
        shutil.copytree(Path(pymysql.__file__).parent, root / "pymysql")
        shutil.copytree(tests, root / "pymysql" / "tests")
        (root / "conftest.py").write_text(CONFTEST)
        kw = server.connect_kwargs()
        admin = server.admin()
        with admin.cursor() as cur:
            for name in ("test1", "test2"):
                cur.execute(f"CREATE DATABASE {name}")
            cur.execute("SET GLOBAL local_infile = 1")
        admin.close()
        base = {"host": kw["host"], "port": kw["port"], "user": kw["user"], "passwd": ""}
        databases = [
            {**base, "database": "test1", "use_unicode": True, "local_infile": True},
            {**base, "database": "test2"},
        ]
        (root / "pymysql" / "tests" / "databases.json").write_text(json.dumps(databases))
        if only:
            _failed(root, "resilient", only)
            return
        plain, plain_summary = _failed(root, "plain", [])
        ours, our_summary = _failed(root, "resilient", [])
    print(f"plain PyMySQL:   {plain_summary}")
    print(f"resilient_dbapi: {our_summary}")
    for name in sorted(ours - plain):
        print(f"  fails only through resilient_dbapi: {name}")


if __name__ == "__main__":
    main()
