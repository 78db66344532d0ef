"""The example application's own tests (``examples/shop``), run as its developers would
run them: pytest in its directory, servers and faults from resilient_dbapi's plugin."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.server

SHOP = Path(__file__).resolve().parent.parent / "examples" / "shop"


def test_the_shop_example_passes_its_tests(server: Any) -> None:
    kwargs = server.connect_kwargs()
    dsn = f"mysql://{kwargs['user']}:{kwargs['password']}@{kwargs['host']}:{kwargs['port']}"
    ran = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=SHOP,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "RESILIENT_DBAPI_TEST_DSN": dsn},
    )
    assert ran.returncode == 0, ran.stdout[-4000:] + ran.stderr[-2000:]
    assert "5 passed" in ran.stdout, ran.stdout[-2000:]
