"""The published packages, built as a release would build them: the wheel carries the
library, its license and typing marker; the sdist carries what its own tests need, and
they run from it; both pass ``twine check``."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    built = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return {"wheel": wheel, "sdist": sdist}


def test_twine_accepts_both(dist: dict[str, Path]) -> None:
    checked = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, dist.values())],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_wheel_is_the_library_with_its_license(dist: dict[str, Path]) -> None:
    with zipfile.ZipFile(dist["wheel"]) as wheel:
        names = set(wheel.namelist())
        (metadata_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(wheel.read(metadata_name).decode())
    assert "resilient_dbapi/py.typed" in names
    assert "resilient_dbapi/policies/profiles/default.toml" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert {n.split("/")[0] for n in names} <= {
        "resilient_dbapi",
        "resilient_dbapi-0.1.0.dist-info",
    }
    assert metadata["License-Expression"] == "MIT"
    assert "Typing :: Typed" in metadata.get_all("Classifier", [])


def test_the_sdist_runs_its_own_tests(dist: dict[str, Path], tmp_path: Path) -> None:
    """Before, it shipped tests/test_*.py without conftest.py, the fake driver or the
    Django project: none of them could run."""
    with tarfile.open(dist["sdist"]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
        sdist.extractall(tmp_path, filter="data")
    for needed in (
        "LICENSE",
        "tests/conftest.py",
        "tests/fakedriver.py",
        "tests/django_project/settings.py",
        "policies/default.toml",
        "tools/async_to_sync.py",
        "benchmarks/__main__.py",
        "mkdocs.yml",
        "docs/index.md",
        "CHANGELOG.md",
    ):
        assert needed in names, needed
    assert not any("__pycache__" in name for name in names)
    (unpacked,) = tmp_path.iterdir()
    where = subprocess.run(
        [sys.executable, "-c", "import resilient_dbapi; print(resilient_dbapi.__file__)"],
        cwd=unpacked,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(unpacked)  # the sdist's own code
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/test_engine.py",
            "tests/test_statements.py",
            "tests/test_twins.py",
            "tests/test_policies.py",
        ],
        cwd=unpacked,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert " passed" in run.stdout and "failed" not in run.stdout
