"""Where each unit's wall time goes against the real server, sampled (py-spy).

cProfile slows every call alike and the in-process figures leave the network out: neither
shows what the proxy costs where it runs, between round trips whose waits leave the CPU's
caches cold. Here a child process runs one unit in a loop over PyMySQL through the
default policies while py-spy samples it (idle samples included: the time waiting for
the server counts), and every sample is put down to the frame it was in: resilient_dbapi's
own code, the driver's (its Python, and the C calls it makes: PyMySQL's ``sendall``),
the socket's (waiting for the server's reply), or the rest (the loop itself, the
standard library). A share times the unit's wall time is its
microseconds per unit.
"""

from __future__ import annotations

import collections
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["BUCKETS", "classify", "sample_units"]

BUCKETS = ("resilient_dbapi", "driver", "socket", "rest")
_RATE = 500  # samples per second: enough for a few hundred in our code per unit
_LOOP = "_sampled_loop"  # the child's loop: only samples under it count


def classify(leaf: str) -> str:
    """The bucket of a sample by its innermost frame, as py-spy names it
    (``function (path/file.py:line)``)."""
    where = "/" + leaf.rsplit("(", 1)[-1]  # a short path or a full one, alike
    if "/resilient_dbapi/" in where:
        return "resilient_dbapi"
    if "/pymysql/" in where:
        return "driver"
    if any(f"/{name}:" in where for name in ("socket.py", "ssl.py", "selectors.py")):
        return "socket"
    return "rest"


def _count(raw_file: Path) -> collections.Counter[str]:
    """Samples per bucket, from py-spy's raw (collapsed stack) output."""
    counts: collections.Counter[str] = collections.Counter()
    for line in raw_file.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack or not number.isdigit():
            continue
        frames = stack.split(";")
        if not any(frame.startswith(_LOOP) for frame in frames):
            continue  # the child's set-up, not the unit
        counts[classify(frames[-1])] += int(number)
    return counts


def _py_spy() -> str | None:
    found = shutil.which("py-spy")
    if found:
        return found
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else None


def sample_units(kwargs: dict[str, Any], seconds: float) -> dict[str, Any]:
    """Each unit of :mod:`benchmarks.in_process` sampled for ``seconds`` against the
    server of ``kwargs``: per unit its wall microseconds and each bucket's share and
    microseconds. ``{"error": ...}`` when py-spy cannot sample here (it needs ptrace)."""
    from . import in_process

    spy = _py_spy()
    if spy is None:
        return {"error": "py-spy is not installed"}
    in_process._tables(kwargs)
    units: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            # The connect arguments in a file, not on a command line others can read.
            arguments = Path(tmp) / "kwargs.json"
            arguments.write_text(json.dumps(kwargs))
            for number, name in enumerate(in_process.UNITS):
                raw_file = Path(tmp) / f"samples-{number}.txt"
                try:
                    done = subprocess.run(
                        [
                            spy,
                            "record",
                            "--idle",
                            "--nonblocking",
                            "--format",
                            "raw",
                            "--rate",
                            str(_RATE),
                            "--output",
                            str(raw_file),
                            "--",
                            sys.executable,
                            "-m",
                            "benchmarks.sampling",
                            str(arguments),
                            name,
                            str(seconds),
                        ],
                        capture_output=True,
                        text=True,
                        timeout=seconds + 120,
                        check=False,
                        cwd=Path(__file__).resolve().parent.parent,
                    )
                except (OSError, subprocess.TimeoutExpired) as exc:
                    return {"error": f"py-spy on the unit {name!r}: {exc}"}
                # py-spy writes to the same stdout: the child's figures are on their line.
                counted = re.search(r"^units done: (\d+) in ([0-9.]+) s$", done.stdout, re.M)
                if done.returncode != 0 or not raw_file.exists() or counted is None:
                    said = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()
                    return {"error": f"py-spy on the unit {name!r}: {said[-1]}"}
                count, elapsed = int(counted.group(1)), float(counted.group(2))
                samples = _count(raw_file)
                total = sum(samples.values())
                if not total or not count:
                    return {"error": f"no samples of the unit {name!r}"}
                wall_us = elapsed / count * 1e6
                units.append(
                    {
                        "unit": name,
                        "units": count,
                        "samples": total,
                        "ours_samples": samples["resilient_dbapi"],
                        "wall_us": round(wall_us, 1),
                        "share": {b: round(samples[b] / total, 4) for b in BUCKETS},
                        "us": {b: round(samples[b] / total * wall_us, 2) for b in BUCKETS},
                    }
                )
    finally:
        in_process._drop(kwargs)
    return {"units": units, "seconds": seconds, "rate": _RATE}


def table(result: dict[str, Any]) -> list[str]:
    """The Markdown lines of :func:`sample_units`' result."""
    if "error" in result:
        return [f"**Sampled against the server**: not measured: {result['error']}."]
    lines = [
        f"**Sampled against the server** (py-spy, {result['rate']} samples/s without pausing "
        f"the process, idle time included, {result['seconds']:g} s per unit, PyMySQL through "
        "the default policies over loopback): the share of each unit's wall time by the "
        "frame a sample was in, and those microseconds per unit. The sampler shares the "
        "machine's two cores, so wall times run longer than in the side-by-side tables; "
        "resilient_dbapi's microseconds here against the same code without the network "
        "above are what a round trip's cold caches cost our code. A figure from n samples "
        "(its samples) is good to about 1/sqrt(n) of itself: a rough guide, not a target.",
        "",
        "| unit | wall us | resilient_dbapi us (share) | its samples | driver us | socket us "
        "| rest us |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["units"]:
        us, share = r["us"], r["share"]
        lines.append(
            f"| {r['unit']} | {r['wall_us']:.1f} | {us['resilient_dbapi']:.2f} "
            f"({share['resilient_dbapi']:.1%}) | {r['ours_samples']} | {us['driver']:.2f} | "
            f"{us['socket']:.2f} | "
            f"{us['rest']:.2f} |"
        )
    return lines


def _sampled_loop(unit: Any, seconds: float) -> tuple[int, float]:
    """Units run in about ``seconds``, and the seconds they really took."""
    done = 0
    clock = time.perf_counter
    started = clock()
    until = started + seconds
    while clock() < until:
        for _ in range(50):
            unit()
        done += 50
    return done, clock() - started


def _child(kwargs: dict[str, Any], name: str, seconds: float) -> None:
    import pymysql

    import resilient_dbapi

    from . import in_process

    conn = resilient_dbapi.connect(pymysql.connect, **{**kwargs, "autocommit": True})
    unit = in_process._sync_units(conn)[name]
    for _ in range(500):
        unit()  # warm: the server's answers about its tables, the statement cache
    count, elapsed = _sampled_loop(unit, seconds)
    print(f"units done: {count} in {elapsed:.6f} s", flush=True)
    conn.close()


if __name__ == "__main__":
    _child(json.loads(Path(sys.argv[1]).read_text()), sys.argv[2], float(sys.argv[3]))
