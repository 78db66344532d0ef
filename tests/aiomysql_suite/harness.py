"""Runs aiomysql's own suite, from its PyPI sdist, against throwaway MariaDB servers: with
plain aiomysql and through ``resilient_dbapi.aiomysql``, side by side.

The sdist is fetched once (its digest checked) into ``.venv/aiomysql-suite``, beside a
virtual environment with the suite's own pins (its ``requirements-dev.txt``: pytest,
PyMySQL, SQLAlchemy 1.3 for ``aiomysql.sa``, uvloop). Each run gets a server of its own
with TLS (certificates made for the run: the sdist's expire in 2028), and the suite's two
targets: TCP (with TLS) and the unix socket, each under asyncio and uvloop.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from resilient_dbapi.testing import MariaDBServer

from ..certificates import certificates

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CACHE = ROOT / ".venv" / "aiomysql-suite"
VERSION = "0.3.2"
SDIST = (
    "https://files.pythonhosted.org/packages/29/e0/"
    "302aeffe8d90853556f47f3106b89c16cc2ec2a4d269bdfd82e3f4ae12cc/aiomysql-0.3.2.tar.gz"
)
SHA256 = "72d15ef5cfc34c03468eb41e1b90adb9fd9347b0b589114bd23ead569a02ac1a"
# The suite's own pins (requirements-dev.txt of the sdist), and what resilient_dbapi needs.
PINS = ("pytest==8.4.2", "PyMySQL==1.1.2", "SQLAlchemy==1.3.24", "uvloop==0.22.1")
RUN_TIMEOUT = 900.0  # seconds; a hung run fails the test instead of stalling CI


@dataclass(frozen=True)
class Outcome:
    """One run of the suite: the tests that failed or errored (names without their
    parameters: each runs on asyncio and uvloop, over TCP and the socket), how many
    passed, and the end of pytest's output."""

    failed: frozenset[str]
    passed: int
    tail: str


@dataclass(frozen=True)
class Expected:
    differs: dict[str, str]  # test name -> why it fails through the drop-in, by design
    plain: dict[str, str]  # test name -> why it fails with plain aiomysql here


def expected() -> Expected:
    data = tomllib.loads((HERE / "expected.toml").read_text())
    if data.get("version") != VERSION:
        raise ValueError(f"expected.toml is for aiomysql {data.get('version')}, not {VERSION}")
    return Expected(dict(data.get("differs", {})), dict(data.get("plain", {})))


def _sdist() -> Path:
    """The suite's sources, unpacked (downloaded and checked the first time)."""
    root = CACHE / f"aiomysql-{VERSION}"
    if (root / "tests" / "conftest.py").is_file():
        return root
    CACHE.mkdir(parents=True, exist_ok=True)
    archive = CACHE / f"aiomysql-{VERSION}.tar.gz"
    with urllib.request.urlopen(SDIST, timeout=60) as response:
        data = response.read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        raise RuntimeError(f"{SDIST}: sha256 {digest}, expected {SHA256}")
    archive.write_bytes(data)
    # Unpacked beside, then moved in place: an unpacking cut short is never taken whole.
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp, tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4
            tar.extractall(tmp, filter="data")
        else:
            tar.extractall(tmp)  # our own pinned, digest-checked archive
        shutil.rmtree(root, ignore_errors=True)
        os.replace(Path(tmp) / root.name, root)
    return root


def _python() -> Path:
    """The suite's virtual environment (made the first time)."""
    venv = CACHE / "venv"
    python = venv / "bin" / "python"
    stamp = venv / ".pins"
    want = " ".join((*PINS, f"aiomysql=={VERSION}", "tenacity>=8.3"))
    if python.exists() and stamp.is_file() and stamp.read_text() == want:
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *want.split()],
        check=True,
        timeout=600,
    )
    stamp.write_text(want)
    return python


def _import_path() -> Path:
    """A directory holding only resilient_dbapi (this checkout's) and the binding
    plugin: the suite's own ``tests`` package must not meet ours."""
    path = CACHE / "path"
    path.mkdir(parents=True, exist_ok=True)
    for name, target in (
        ("resilient_dbapi", ROOT / "resilient_dbapi"),
        ("bind.py", HERE / "bind.py"),
    ):
        link = path / name
        if not link.is_symlink() or link.resolve() != target:
            link.unlink(missing_ok=True)
            link.symlink_to(target)
    return path


def _tls_args(root: Path, directory: Path) -> tuple[str, ...]:
    """A CA and server certificate made now, the CA put where the suite's conftest reads
    it (it verifies the server with it)."""
    paths = certificates(directory)
    shutil.copyfile(paths["ca"], root / "tests" / "ssl_resources" / "ssl" / "ca.pem")
    return (f"--ssl-ca={paths['ca']}", f"--ssl-cert={paths['cert']}", f"--ssl-key={paths['key']}")


def _start(
    mode: str,
    root: Path,
    python: Path,
    server: MariaDBServer,
    report: Path,
    tests: Iterable[str],
) -> subprocess.Popen[bytes]:
    kw = server.connect_kwargs()
    env = {
        **os.environ,
        "MODE": mode,
        "PYTHONPATH": str(_import_path()),
        "MYSQL_ROOT_PASSWORD": kw["password"],
        "RESILIENT_DBAPI_POLICY": str(HERE / "profile.toml"),
    }
    return subprocess.Popen(
        [
            str(python),
            "-m",
            "pytest",
            "-q",
            # The sdist's own settings (it has none for pytest), not those of the
            # checkout the cache lies in.
            "-c",
            "setup.cfg",
            "--rootdir=.",
            "-p",
            "no:cacheprovider",
            "-p",
            "bind",
            f"--junitxml={report}",
            f"--mysql-address={kw['host']}:{kw['port']}",
            f"--mysql-unix-socket={server.basedir / 'sock'}",
            *tests,
        ],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _outcome(report: Path, output: bytes) -> Outcome:
    text = output.decode(errors="replace").strip()
    if not report.is_file():
        raise RuntimeError(f"aiomysql's suite did not run:\n{text[-3000:]}")
    failed: set[str] = set()
    passed = 0
    for case in ET.parse(report).getroot().iter("testcase"):
        name = f"tests/{case.get('classname', '').removeprefix('tests.').replace('.', '/')}.py"
        name = f"{name}::{case.get('name', '').split('[')[0]}"
        if case.find("failure") is not None or case.find("error") is not None:
            failed.add(name)
        elif case.find("skipped") is None:
            passed += 1
    tail = "\n".join(text.splitlines()[-15:])
    return Outcome(frozenset(failed), passed, tail)


def run_both(tests: Iterable[str] = ("tests",)) -> tuple[Outcome, Outcome]:
    """The suite (or the ``tests`` named) with plain aiomysql and through the drop-in,
    at the same time, each with its own server: ``(plain, resilient)``."""
    root = _sdist()
    python = _python()
    tests = tuple(tests)
    reports = {mode: CACHE / f"report-{mode}.xml" for mode in ("plain", "resilient")}
    for report in reports.values():
        report.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tls = _tls_args(root, Path(tmp))
        with MariaDBServer(extra_args=tls) as a, MariaDBServer(extra_args=tls) as b:
            runs = {
                mode: _start(mode, root, python, server, reports[mode], tests)
                for mode, server in (("plain", a), ("resilient", b))
            }
            outputs: dict[str, bytes] = {}
            deadline = time.monotonic() + RUN_TIMEOUT
            try:
                for mode, proc in runs.items():
                    left = max(1.0, deadline - time.monotonic())
                    outputs[mode], _ = proc.communicate(timeout=left)
            finally:
                for proc in runs.values():
                    if proc.poll() is None:
                        proc.kill()
                        with contextlib.suppress(subprocess.TimeoutExpired):
                            proc.communicate(timeout=30)  # reaps it, closes its pipe
    plain, ours = (_outcome(reports[mode], outputs[mode]) for mode in ("plain", "resilient"))
    return plain, ours


def again(first: Outcome, second: Outcome, tests: Iterable[str]) -> Outcome:
    """``first`` with the results of ``tests`` taken from ``second``, a run of those only."""
    names = frozenset(tests)
    return Outcome((first.failed - names) | second.failed, first.passed, second.tail)


def main() -> None:
    plain, ours = run_both()
    print(f"plain aiomysql:  {plain.passed} passed, failed: {sorted(plain.failed)}")
    print(f"resilient_dbapi: {ours.passed} passed, failed: {sorted(ours.failed)}")
    listed = expected()
    for name in sorted(ours.failed - plain.failed - set(listed.differs)):
        print(f"  fails only through resilient_dbapi, not listed: {name}")
    for name in sorted(set(listed.differs) - ours.failed):
        print(f"  listed but passes now: {name}")
