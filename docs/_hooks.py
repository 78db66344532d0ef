"""MkDocs hook: the benchmark charts are served from where the benchmark writes them
(``benchmarks/results/*.png``), under ``img/``, so the performance page shows the
committed run without a copy of each chart in ``docs/``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"


def on_files(files: Files, config: Any) -> Files:
    for chart in sorted(RESULTS.glob("*.png")):
        files.append(File.generated(config, f"img/{chart.name}", abs_src_path=str(chart)))
    return files
