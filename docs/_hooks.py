"""MkDocs hooks: the benchmark charts are served from where the benchmark writes them
(``benchmarks/results/*.png``), under ``img/``, so the performance page shows the
committed run without a copy of each chart in ``docs/``; the docstrings' Sphinx roles
shown as code."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"


def on_files(files: Files, config: Any) -> Files:
    for chart in sorted(RESULTS.glob("*.png")):
        files.append(File.generated(config, f"img/{chart.name}", abs_src_path=str(chart)))
    return files


# The docstrings' Sphinx roles (:func:`connect`, :class:`~resilient_dbapi.HostProbe`),
# which mkdocstrings leaves as they are: shown as the code they name ("~" keeps the last
# part, as Sphinx does).
_ROLE = re.compile(
    r":(?:py:)?(?:func|class|meth|mod|attr|exc|data|obj|const):<code>(~?)([^<]*)</code>"
)


def _role(match: re.Match[str]) -> str:
    target = match.group(2)
    return f"<code>{target.rsplit('.', 1)[-1] if match.group(1) else target}</code>"


def on_page_content(html: str, **kwargs: Any) -> str:
    return _ROLE.sub(_role, html)
