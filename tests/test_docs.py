"""The documentation: the site builds with ``mkdocs build --strict``, and every code block
of the docs and the README runs against a real server, or says why it does not.

The examples connect as a reader would: to ``127.0.0.1:3306`` as ``app``, the password in
``APP_PASSWORD``, the database ``shop``. Here that user and database are made on the test
server, ``3306`` becomes its port (and ``3307``, a second host in an example, a port
nothing listens on), and each page's python blocks run in order in one fresh interpreter
(``await`` at the top level in one event loop), as a reader pasting them would.
"""

from __future__ import annotations

import ast
import json
import os
import re
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from resilient_dbapi import policies
from resilient_dbapi.testing import free_port

ROOT = Path(__file__).resolve().parent.parent
PAGES = [*sorted((ROOT / "docs").rglob("*.md")), ROOT / "README.md"]
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.M | re.S)
_NOT_RUN = re.compile(r"<!-- not run: (\S.*?) -->$")
_ELLIPSIS_VALUE = re.compile(r"[=(,]\s*\.\.\.\s*[,)]")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    language: str
    code: str
    not_run: str | None  # why not, when it says so

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    text = page.read_text()
    found = []
    for fence in _FENCE.finditer(text):
        before = text[: fence.start()].rstrip("\n").rsplit("\n", 1)[-1]
        said = _NOT_RUN.search(before)
        found.append(
            Block(
                page,
                text[: fence.start()].count("\n") + 1,
                fence.group(1),
                fence.group(2),
                said.group(1) if said else None,
            )
        )
    return found


ALL = [block for page in PAGES for block in blocks(page)]
RUNNABLE = sorted({b.page for b in ALL if b.language == "python" and b.not_run is None})


def test_every_code_block_runs_or_says_why_not() -> None:
    assert len(ALL) > 20, "the pages lost their examples"
    for block in ALL:
        if block.language == "mermaid":
            continue  # a diagram: the site build renders it
        if block.language not in ("python", "toml"):
            assert block.not_run, f"{block.where}: a {block.language or 'plain'} block says why not"
        if block.language == "python":
            # Even an example that is not run must be Python, and pass no Ellipsis as a
            # value (copied as written, `password=...` connects with an Ellipsis).
            compile(block.code, block.where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
            assert not _ELLIPSIS_VALUE.search(block.code), f"{block.where}: `...` as a value"


def test_the_profiles_shown_load(tmp_path: Path) -> None:
    shown = [b for b in ALL if b.language == "toml" and b.not_run is None]
    assert shown
    for block in shown:
        profile = tmp_path / "shown.toml"
        profile.write_text(block.code)
        assert policies.load(str(profile)), block.where


def test_the_site_builds_strict(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert built.returncode == 0, built.stdout + built.stderr
    reference = (tmp_path / "reference" / "index.html").read_text()
    assert reference.count("run_transaction") > 1
    # The docstrings' Sphinx roles are shown as code, not as ":func:`name`".
    assert re.findall(r":(?:func|class|meth|mod|attr|exc):<code>", reference) == []
    assert "<code>HostProbe</code>" in reference
    assert (tmp_path / "img" / "peers.png").read_bytes()[:4] == b"\x89PNG"


@pytest.fixture(scope="module")
def shop(server: Any) -> dict[str, Any]:
    """The reader's user and database on the test server."""
    password = secrets.token_urlsafe(12)
    admin = server.admin()
    with admin.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS shop")
        cur.execute("CREATE DATABASE shop")
        cur.execute("CREATE TABLE shop.product (id INT PRIMARY KEY, name VARCHAR(100))")
        cur.execute("INSERT INTO shop.product VALUES (42, 'teapot'), (43, 'cup')")
        cur.execute(
            "CREATE TABLE shop.acc (id INT PRIMARY KEY, n INT NOT NULL, seen DATETIME NULL) "
            "ENGINE=InnoDB"
        )
        cur.execute("INSERT INTO shop.acc (id, n) VALUES (1, 100), (2, 100)")
        cur.execute("DROP USER IF EXISTS 'app'@'%'")
        cur.execute("CREATE USER 'app'@'%%' IDENTIFIED BY %s", (password,))
        cur.execute("GRANT ALL ON shop.* TO 'app'@'%'")
    admin.close()
    return {"password": password, "port": server.connect_kwargs()["port"]}


_RUNNER = """
import ast, asyncio, inspect, json, sys
blocks = json.load(open(sys.argv[1]))
loop = asyncio.new_event_loop()
namespace = {"__name__": "__main__"}
for where, code in blocks:
    compiled = compile(code, where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(compiled, namespace)
    if inspect.iscoroutine(result):
        loop.run_until_complete(result)
"""


@pytest.mark.parametrize("page", RUNNABLE, ids=[str(p.relative_to(ROOT)) for p in RUNNABLE])
def test_the_examples_run_against_the_server(
    page: Path, shop: dict[str, Any], tmp_path: Path
) -> None:
    nowhere = str(free_port())
    runnable = [
        (b.where, re.sub(r"\b3307\b", nowhere, re.sub(r"\b3306\b", str(shop["port"]), b.code)))
        for b in blocks(page)
        if b.language == "python" and b.not_run is None
    ]
    (tmp_path / "blocks.json").write_text(json.dumps(runnable))
    (tmp_path / "runner.py").write_text(_RUNNER)
    ran = subprocess.run(
        [sys.executable, "runner.py", "blocks.json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={
            **os.environ,
            "APP_PASSWORD": shop["password"],
            "PYTHONPATH": str(ROOT),
        },
    )
    assert ran.returncode == 0, ran.stderr[-4000:]
