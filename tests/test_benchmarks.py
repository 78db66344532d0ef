"""The benchmark suite runs end to end (tiny sizes): every section, its report, JSON and
charts. Its figures are not asserted: timings belong to the benchmark run, not to tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks import sampling
from benchmarks.__main__ import SECTIONS, main

pytestmark = pytest.mark.server


def test_the_suite_writes_its_report_json_and_charts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--quick", "--rounds", "1", "--per-round", "5", "--statements", "20000"]
    assert main([*args, "--quiet", "--out", str(tmp_path)]) == 0
    report = (tmp_path / "report.md").read_text()
    assert report == capsys.readouterr().out.rstrip("\n") + "\n"  # printed as written
    results = json.loads((tmp_path / "results.json").read_text())
    keys = set(results["sections"])
    for wanted in (
        "overhead_pymysql",
        "overhead_aiomysql",
        "overhead_mysqlclient",
        "overhead_mysql_connector",
        "overhead_psycopg",
        "overhead_sqlite3",
        "peers",
        "peers_async",
        "recovery",
        "blackhole",
        "scaling",
        "memory",
        "costs",
        "failover",
        "failover_galera",
        "failover_proxy",
        "health_view",
        "replay",
    ):
        assert wanted in keys, wanted
    in_process = results["sections"]["costs"]["in_process"]
    for driver in ("pymysql", "aiomysql"):
        units = {row["unit"]: row for row in in_process[driver]}
        assert list(units) == [
            "SELECT 1",
            "cursor per request",
            "point select",
            "INSERT",
            "transaction",
        ]
        for row in units.values():
            assert row["raw_us"] > 0 and row["proxy_us"] > 0 and row["top"], row
    by_driver = results["sections"]["costs"]["by_driver"]
    assert list(by_driver) == ["pymysql", "mysqlclient", "mysql_connector", "psycopg"]
    for rows in by_driver.values():
        names = [r["unit"] for r in rows]
        assert names == ["SELECT 1", "cursor per request", "INSERT", "transaction"]
        for r in rows:  # every unit goes through the proxy: its functions are seen
            assert 0 < r["ours_us"] < r["profiled_us"] and r["top"], r
    sampled = results["sections"]["costs"]["sampled"]
    assert "error" not in sampled, sampled
    assert [u["unit"] for u in sampled["units"]] == list(units)
    for unit in sampled["units"]:
        assert unit["samples"] > 0 and abs(sum(unit["share"].values()) - 1) < 0.01, unit
        assert unit["share"]["socket"] > 0, unit  # idle samples count: the wait is seen
    failover = results["sections"]["failover"]
    assert "skipped" not in failover, failover
    assert failover and all(variant["safe"] for variant in failover.values())
    assert results["sections"]["failover_proxy"]["safe"]
    replayed = results["sections"]["replay"]
    assert replayed["safe"] and replayed["ratio"] > 0, replayed
    health = results["sections"]["health_view"]
    assert health and all(variant["safe"] for variant in health.values())
    galera = results["sections"]["failover_galera"]
    assert "skipped" not in galera, galera
    assert galera and all(variant["safe"] for variant in galera.values())
    assert "server restart" in results["sections"]["recovery"]["scenarios"]
    targets = {t["what"] for t in results["targets"]}
    for section, name in (("overhead_pymysql", "PyMySQL"), ("overhead_aiomysql", "aiomysql")):
        # The journal's own comparison: replay off and on, nothing else between.
        journal = results["sections"][section]["results"]["journal"]
        assert list(journal) == [
            "resilient_dbapi, default policies",
            "resilient_dbapi, default policies + ReplayTransaction()",
        ]
        assert all(len(v["rounds_us"]) == 3 for v in journal.values()), journal  # 3 x rounds
        assert f"ReplayTransaction's journal vs replay off ({name}, transaction)" in targets
    for unit in ("SELECT 1", "cursor per request", "INSERT", "transaction"):
        assert f"Default policies vs raw PyMySQL, {unit}" in targets, unit
    assert "Default policies vs raw aiomysql, cursor per request" in targets
    assert any("Recovery" in t for t in targets) and any("RSS" in t for t in targets)
    assert "| target | measured |" in report and "## The peers" in report
    charts = results["charts"]
    png = b"\x89PNG\r\n\x1a\n"
    assert charts and all((tmp_path / name).read_bytes()[:8] == png for name in charts)


def test_samples_are_put_down_to_the_frame_they_were_in(tmp_path: Path) -> None:
    raw = tmp_path / "samples.txt"
    loop = "_sampled_loop (benchmarks/sampling.py:160)"
    raw.write_text(
        "<module> (benchmarks/sampling.py:190);_child (benchmarks/sampling.py:180) 7\n"
        f"<module> (x.py:1);{loop};execute (resilient_dbapi/cursor.py:126) 3\n"
        f"<module> (x.py:1);{loop};execute (resilient_dbapi/cursor.py:126);"
        "execute (pymysql/cursors.py:153) 5\n"
        f"<module> (x.py:1);{loop};_read_bytes (pymysql/connections.py:800);"
        "readinto (socket.py:706) 11\n"
        f"<module> (x.py:1);{loop} 2\n"
    )
    counts = sampling._count(raw)
    # The set-up (outside the loop) is left out; each sample goes to its innermost frame.
    assert counts == {"resilient_dbapi": 3, "driver": 5, "socket": 11, "rest": 2}


def test_bad_arguments_name_what_is_allowed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--only", "overhead,nonsense"])
    err = capsys.readouterr().err
    assert "nonsense" in err and all(name in err for name in SECTIONS)
    with pytest.raises(SystemExit):
        main(["--rounds", "0"])
    assert "--rounds" in capsys.readouterr().err


def test_the_charts_show_spread_the_kill_and_plain_labels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Drawn again from the committed run's results.json: every section's chart, bars
    with their spread, the peers with whether each survives the kill, labels without
    markdown, and the memory run as lines (its growth, zero, drew nothing as bars)."""
    import matplotlib.axes

    from benchmarks import charts, memory, peers

    committed = Path(__file__).resolve().parent.parent / "benchmarks" / "results"
    written = charts.redraw(committed / "results.json", tmp_path)
    assert sorted(p.name for p in written) == sorted(p.name for p in committed.glob("*.png"))

    sections = json.loads((committed / "results.json").read_text())["sections"]
    (chart,) = peers.charts("peers", sections["peers"])
    assert chart.spread and set(chart.spread) == set(chart.values)
    assert chart.notes["resilient_dbapi, default policies, one connection"] == (
        "survives the kill (idle and at once)"
    )
    assert chart.notes["raw PyMySQL, one connection (unprotected)"].startswith("fails at the kill")
    (lines,) = memory.charts("memory", sections["memory"])
    assert all(len(points) > 10 for points in lines.series.values())

    shown: list[str] = []
    real = matplotlib.axes.Axes.set_yticks

    def seen(self: Any, ticks: Any, labels: Any = None, **kwargs: Any) -> Any:
        shown.extend(labels or ())
        return real(self, ticks, labels=labels, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "set_yticks", seen)
    charts.draw(chart, tmp_path)
    assert shown and not any("`" in label or "**" in label for label in shown)
    assert any("ping() before each request" in label for label in shown)


def test_the_report_says_by_how_much_and_why_each_missed_target_is_missed() -> None:
    """From the same run's in-process profile of the unit; nothing for a target met."""
    from benchmarks.__main__ import _missed
    from benchmarks.common import Section, Target

    costs = Section(
        "costs",
        "costs",
        "",
        {
            "in_process": {
                "pymysql": [
                    {
                        "unit": "INSERT",
                        "raw_us": 2.8,
                        "proxy_us": 5.2,
                        "overhead_us": 2.4,
                        "top": ["cursor.py:execute x1 3.8", "engine.py:done x1 0.9"],
                    }
                ]
            }
        },
    )
    overhead = Section(
        "overhead_pymysql",
        "overhead",
        "",
        {},
        targets=[
            Target("Default policies vs raw PyMySQL, INSERT", 1.041, 1.03),
            Target("Default policies vs raw PyMySQL, SELECT 1", 1.01, 1.02),
        ],
    )
    text = _missed([overhead, costs])
    assert "INSERT: 1.041 against at most 1.03, missed by 0.011" in text
    assert "+2.4 us per unit on the driver's 2.8 us" in text
    assert "cursor.py:execute x1 3.8" in text
    assert "SELECT 1" not in text
    assert _missed([costs]) == ""
    # A driver the in-process measure cannot answer: from its profile against the server
    costs.data["by_driver"] = {
        "psycopg": [
            {
                "unit": "transaction",
                "profiled_us": 2900.0,
                "ours_us": 170.5,
                "ours_share": 0.0588,
                "top": ["cursor.py:73(execute) x9 67.24", "adapters/psycopg.py:251(status) x20 23"],
            }
        ]
    }
    target = Target("Default policies vs raw psycopg, transaction", 1.054, 1.03)
    text = _missed([Section("overhead_psycopg", "overhead", "", {}, targets=[target]), costs])
    assert "transaction: 1.054 against at most 1.03, missed by 0.024" in text
    assert "5.9% of the unit's time profiled against the server (170.5 of 2900.0" in text
    assert "adapters/psycopg.py:251(status) x20 23" in text
