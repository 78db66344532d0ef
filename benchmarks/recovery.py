"""Recovery: what the first statement after a fault costs, and how fast a blackholed
connection is found.

Each trial makes one fault on a resilient connection that was just in use, times the first
``SELECT 1`` + ``fetchall()`` through it, and right after times what the best client could
do instead: a fresh ``pymysql.connect`` plus the same statement. The ratio is taken trial
by trial, so the machine's swings hit both sides alike; figures are medians over trials.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import ssl
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pymysql

import resilient_dbapi
from resilient_dbapi import MaxAge, PingOnCheckout, RetryOnError
from resilient_dbapi.events import Reconnected
from resilient_dbapi.policies import Policy
from resilient_dbapi.testing import FaultProxy, kill_connection

from .common import Chart, Context, Section, Target, ratio_spread, verdict

__all__ = ["run", "steps"]

TARGET = 1.2
"""The first statement after a fault: at most this many times a fresh connect + statement."""
STATEMENT = "SELECT 1"
PAST_SKIP_RECENT = 0.6  # the default skip_recent is 0.5 s: past it the socket is checked
IDLE_SLEEP = 1.5  # with wait_timeout = 1: past MaxAge's limit (0.9 s) and the server's 1 s
PING_IDLE = 0.5  # the blackhole's PingOnCheckout(idle=...): short, so trials stay short
RAW_PATIENCE = 3.0  # raw PyMySQL gets this many ping timeouts before we stop waiting
BLACKHOLE_TRIALS = 3  # per ping timeout: its timing is the ping's limit, hardly noisy


def _trials(ctx: Context) -> int:
    return 3 if ctx.quick else 15


def _restart_trials(ctx: Context) -> int:
    return 2 if ctx.quick else 7


def _timeouts(ctx: Context) -> tuple[float, ...]:
    return (0.5,) if ctx.quick else (0.5, 1.0, 2.0)


def steps(ctx: Context) -> int:
    """Progress steps :func:`run` takes: one per trial."""
    recovery = 4 * _trials(ctx) + (_restart_trials(ctx) if ctx.mysql_server is not None else 0)
    return recovery + len(_timeouts(ctx)) * BLACKHOLE_TRIALS


# -- timing --------------------------------------------------------------------------------


def _statement(conn: Any) -> None:
    cur = conn.cursor()
    try:
        cur.execute(STATEMENT)
        cur.fetchall()
    finally:
        cur.close()


def _timed(conn: Any) -> float:
    """Milliseconds for the statement (its cursor included) on ``conn``."""
    t0 = time.perf_counter()
    _statement(conn)
    return (time.perf_counter() - t0) * 1000


def _fresh(kwargs: dict[str, Any]) -> tuple[float, float]:
    """Milliseconds for a fresh PyMySQL connect plus the statement (the close not timed),
    and for the connect alone."""
    t0 = time.perf_counter()
    conn = pymysql.connect(**kwargs)
    t1 = time.perf_counter()
    try:
        _statement(conn)
        return (time.perf_counter() - t0) * 1000, (t1 - t0) * 1000
    finally:
        conn.close()


def _strict(ctx: Context) -> dict[str, Any]:
    """The connect arguments for both sides: on the server we started, without PyMySQL's
    TLS context (built at every connect, 20-30 ms here, it would hide what a recovery
    adds to a connect); an existing server's arguments as given."""
    if ctx.mysql_server is None:
        return ctx.mysql
    return {**ctx.mysql, "ssl_disabled": True}


def _median(values: Sequence[float], digits: int = 2) -> float:
    return round(statistics.median(values), digits)


def _tls_context_ms(kwargs: dict[str, Any]) -> float | None:
    """Milliseconds PyMySQL spends building a TLS context at each connect, or None when it
    builds none (``ssl_disabled=True``, or a version without "preferred" TLS)."""
    probe = pymysql.connect(**kwargs)
    try:
        if getattr(probe, "ctx", None) is None:
            return None
    finally:
        probe.close()
    samples = []
    for _ in range(3):
        t0 = time.perf_counter()
        ssl.create_default_context()  # what PyMySQL's _create_ssl_ctx({}) does
        samples.append((time.perf_counter() - t0) * 1000)
    return _median(samples)


# -- the faults ----------------------------------------------------------------------------


Fault = Callable[[Any], None]


@dataclass(frozen=True)
class _Scenario:
    name: str
    fault: Fault
    policies: list[Policy] | None = None
    idle: float = 0.0
    """Seconds the fault leaves the connection idle: whichever side goes second waits as
    long first, since a process that slept runs its next round trip slower (cold
    caches, a CPU clocked down), and only one side paying that would skew the ratio."""


def _measure(ctx: Context, scenario: _Scenario, trials: int) -> dict[str, Any]:
    """Trials of one scenario: the first statement after the fault vs a fresh connect."""
    ctx.progress.note(f"recovery: {scenario.name}")
    firsts: list[float] = []
    bases: list[float] = []
    # Each side split in two: the new connection (the driver's connect, and for the
    # proxy its set-up, from its Reconnected event) and the rest (for the proxy: finding
    # the connection dead, a failed send, closing it, the statement).
    reconnects: list[float] = []
    connects: list[float] = []
    reasons: Counter[str] = Counter()
    resends = 0
    kwargs = _strict(ctx)
    for i in range(trials):
        seen: list[float] = []

        def listen(event: object, seen: list[float] = seen) -> None:
            if isinstance(event, Reconnected):
                seen.append(event.seconds * 1000)

        conn = resilient_dbapi.connect(
            pymysql.connect, **kwargs, policies=scenario.policies, listeners=[listen]
        )
        try:
            _statement(conn)  # in use, as a live application's connection is
            scenario.fault(conn)
            # The two sides take turns going first: the one going second runs with the
            # code and caches the first just warmed (and, after a restart, on a server
            # the first warmed up), which always favouring one side would skew.
            if i % 2:
                base = _fresh(kwargs)
                time.sleep(scenario.idle)
                firsts.append(_timed(conn))
            else:
                firsts.append(_timed(conn))
                time.sleep(scenario.idle)
                base = _fresh(kwargs)
            bases.append(base[0])
            connects.append(base[1])
            reconnects.append(sum(seen))
            reasons.update(conn.stats.reconnect_reasons)
            resends += conn.stats.statement_resends
        finally:
            conn.close()
        ctx.progress.step()
    ratios = [f / b for f, b in zip(firsts, bases, strict=True)]
    return {
        "first_ms": _median(firsts),
        "baseline_ms": _median(bases),
        "ratio": _median(ratios, 3),
        "ratio_min": round(min(ratios), 3),
        "ratio_max": round(max(ratios), 3),
        "trials": trials,
        "reconnect_ms": _median(reconnects),
        "connect_ms": _median(connects),
        "rest_ms": _median([f - r for f, r in zip(firsts, reconnects, strict=True)]),
        "statement_ms": _median([b - c for b, c in zip(bases, connects, strict=True)]),
        "reconnect_reasons": dict(reasons),
        "statement_resends": resends,
        "first_ms_per_trial": [round(v, 3) for v in firsts],
        "baseline_ms_per_trial": [round(v, 3) for v in bases],
    }


def _how(result: dict[str, Any]) -> str:
    parts = [f"{reason} x{n}" for reason, n in sorted(result["reconnect_reasons"].items())]
    if result["statement_resends"]:
        parts.append(f"resent x{result['statement_resends']}")
    return ", ".join(parts) or "no reconnect"


def _recovery(ctx: Context) -> Section:
    admin = pymysql.connect(**{**ctx.mysql, "autocommit": True})

    def kill(conn: Any) -> None:
        kill_connection(admin, conn.thread_id(), wait=5.0)

    def kill_then_idle(conn: Any) -> None:
        kill(conn)
        time.sleep(PAST_SKIP_RECENT)

    def idle_timeout(conn: Any) -> None:
        cur = conn.cursor()
        cur.execute("SET SESSION wait_timeout = 1")  # journaled: replayed on reconnects too
        cur.close()
        time.sleep(IDLE_SLEEP)

    server = ctx.mysql_server

    def restart(conn: Any) -> None:
        assert server is not None  # only measured with a server we started
        server.restart()

    # Without MaxAge nothing follows wait_timeout: the server really closes the session.
    unaware: list[Policy] = [PingOnCheckout(), RetryOnError()]
    scenarios = [
        _Scenario("`KILL`, statement at once (sent on the dead socket, then resent)", kill),
        _Scenario(
            "`KILL`, statement after 0.6 s idle (socket check)",
            kill_then_idle,
            idle=PAST_SKIP_RECENT,
        ),
        _Scenario(
            "idle timeout, default policies (MaxAge follows wait_timeout)",
            idle_timeout,
            idle=IDLE_SLEEP,
        ),
        _Scenario(
            "idle timeout, server closed it (no MaxAge: socket check)",
            idle_timeout,
            unaware,
            idle=IDLE_SLEEP,
        ),
    ]
    results: dict[str, dict[str, Any]] = {}
    try:
        for scenario in scenarios:
            results[scenario.name] = _measure(ctx, scenario, _trials(ctx))
    finally:
        admin.close()
    restart_name = "server restart"
    if server is not None:
        scenario = _Scenario(restart_name, restart)
        results[restart_name] = _measure(ctx, scenario, _restart_trials(ctx))

    lines = [
        "| scenario | first statement ms | fresh connect + statement ms | ratio | range | "
        "recovered by |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['first_ms']:.2f} | {r['baseline_ms']:.2f} | {r['ratio']:.3f} | "
            f"{r['ratio_min']:.3f}-{r['ratio_max']:.3f} | {_how(r)} |"
        )
    split = [
        "| scenario | new connection ms: proxy (connect + set-up) | driver connect | "
        "the rest ms: proxy (detect, failed send, close, statement) | driver statement |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        split.append(
            f"| {name} | {r['reconnect_ms']:.2f} | {r['connect_ms']:.2f} | "
            f"{r['rest_ms']:.2f} | {r['statement_ms']:.2f} |"
        )
    verdicts = [f"- {verdict(r['ratio'], TARGET, name)}" for name, r in results.items()]
    restarts = f" ({_restart_trials(ctx)} for the restart)"
    if server is None:
        lines.append(f"| {restart_name} | skipped: --dsn server cannot be restarted | | | | |")
        verdicts.append("- After a server restart: skipped: --dsn server cannot be restarted.")
        restarts = ""
    intro = (
        f"`{STATEMENT}` + fetchall through `resilient_dbapi.connect(pymysql.connect, ...)` "
        "right after the fault, vs a fresh `pymysql.connect` + the same statement in the same "
        f"trial; medians over {_trials(ctx)} trials{restarts}, ratios trial by trial. "
        "*Recovered by* counts the connections' reconnect reasons: `error`, the statement "
        "failed on the dead connection and, being a read, was resent on a new one; "
        "`liveness`, the socket check found it dead before sending; `idle`, MaxAge replaced it "
        "before the server's `wait_timeout`."
    )
    parts = [
        intro,
        "\n".join(lines),
        "\n".join(verdicts),
        "Where the time goes (medians of the same trials): the proxy's new connection, timed "
        "by its `Reconnected` event, against the driver's connect alone; and the rest of the "
        "first statement against the driver's statement on its fresh connection. The new "
        "connection runs as many statements as the driver's own connect: the autocommit mode "
        "and the replayed session settings (`SET SESSION wait_timeout = 1` in the idle "
        "scenarios) ride in the statement that turns session tracking on. The rest holds "
        "what a fresh connection never pays: finding the old one dead (a failed send and "
        "its error, within the window in which a read skips the socket check; else the "
        "check itself), and closing its socket, 0.1 ms or more after an idle spell. The "
        "window is kept: a socket check on every statement would cost the steady state "
        "about 0.6 us per statement (0.6 % of `SELECT 1`) to save a failed send only in "
        "the rare trial where the connection died within 0.5 s of its last use.",
        "\n".join(split),
    ]
    tls_ms = _tls_context_ms(ctx.mysql)
    if tls_ms is not None and ctx.mysql_server is not None:
        parts.append(
            f"Both sides connect with `ssl_disabled=True`: PyMySQL "
            f"{importlib.metadata.version('PyMySQL')} otherwise builds a TLS context (loading "
            "the system's CA certificates) at every connect, even when the server offers no "
            f"TLS: {tls_ms:.1f} ms here, which would dilute the ratios towards 1. The two "
            "sides take turns going first (the second runs on code, caches and a server the "
            "first warmed up); after an idle fault the second idles as long before its turn "
            "(a process that slept runs its next round trip slower)."
        )
    markdown = "\n\n".join(parts) + "\n"
    data = {
        "target": TARGET,
        "statement": STATEMENT,
        "scenarios": results,
        "restart": "measured" if ctx.mysql_server is not None else "skipped",
        "pymysql_tls_context_ms": tls_ms,
    }
    return Section(
        key="recovery",
        title="Recovery: the first statement after a fault",
        markdown=markdown,
        data=data,
        charts=charts("recovery", data),
        targets=[
            Target(
                f"Recovery, {name}: first statement / fresh connect + statement", r["ratio"], TARGET
            )
            for name, r in results.items()
        ],
    )


# -- blackhole -----------------------------------------------------------------------------


class _Blocked:
    """A raw PyMySQL statement run in a daemon thread, so waiting on it stays bounded."""

    def __init__(self, conn: Any) -> None:
        self.outcome: str | None = None
        self.took = 0.0
        self.started = time.monotonic()
        # Daemon: if the proxy's sockets somehow stay open, it must not hold up the exit.
        self.thread = threading.Thread(target=self._run, args=(conn,), daemon=True)
        self.thread.start()

    def _run(self, conn: Any) -> None:
        try:
            _statement(conn)
            self.outcome = "returned"
        except Exception as exc:
            self.outcome = f"{type(exc).__name__} {exc.args[0] if exc.args else ''}".strip()
        self.took = time.monotonic() - self.started

    def wait(self, until: float) -> str:
        self.thread.join(max(0.0, until - time.monotonic()))
        if self.thread.is_alive():
            return f"still blocked after {time.monotonic() - self.started:.1f} s"
        return f"{self.outcome} after {self.took:.2f} s"


def _blackhole_one(
    ctx: Context, proxy: FaultProxy, via: dict[str, Any], timeout: float, with_raw: bool
) -> dict[str, Any]:
    """One trial: blackhole a resilient connection (and a raw one), time the next
    statement, then a fresh connect through the proxy."""
    policies: list[Policy] = [
        PingOnCheckout(idle=PING_IDLE, timeout=timeout, skip_recent=PING_IDLE / 2),
        MaxAge(),
        RetryOnError(),
    ]
    conn = resilient_dbapi.connect(pymysql.connect, **via, policies=policies)
    raw = pymysql.connect(**via) if with_raw else None  # read_timeout unset: wait forever
    blocked: _Blocked | None = None
    try:
        _statement(conn)
        if raw is not None:
            _statement(raw)
        proxy.blackhole()  # the sockets stay open; nothing gets through any more
        time.sleep(PING_IDLE + 0.1)
        if raw is not None:
            # Alongside the resilient statement: the raw one blocks in recv(), idle.
            blocked = _Blocked(raw)
        first = _timed(conn) / 1000
        reasons = dict(conn.stats.reconnect_reasons)
        base = _fresh(via)[0] / 1000
        raw_outcome = (
            blocked.wait(blocked.started + RAW_PATIENCE * timeout) if blocked is not None else None
        )
    finally:
        conn.close()
        # Closing the relayed sockets ends the raw statement's recv(): its thread returns.
        proxy.close_all()
        if blocked is not None:
            blocked.thread.join(2.0)
        if raw is not None:
            with contextlib.suppress(Exception):
                raw.close()
    ctx.progress.step()
    return {
        "seconds": first,
        "baseline_s": base,
        "within": first <= 1.1 * timeout + base,
        "reasons": reasons,
        "raw": raw_outcome,
    }


def _blackhole(ctx: Context) -> Section:
    via = {**ctx.mysql, "host": "127.0.0.1"}
    results: dict[str, dict[str, Any]] = {}
    for timeout in _timeouts(ctx):
        ctx.progress.note(f"blackhole: ping timeout {timeout:g} s")
        proxy = FaultProxy(ctx.mysql["port"], ctx.mysql.get("host", "127.0.0.1"))
        try:
            via["port"] = proxy.port
            trials = [
                _blackhole_one(ctx, proxy, via, timeout, with_raw=i == 0)
                for i in range(BLACKHOLE_TRIALS)
            ]
        finally:
            proxy.close()
        seconds = [t["seconds"] for t in trials]
        reasons: Counter[str] = Counter()
        for t in trials:
            reasons.update(t["reasons"])
        results[f"{timeout:g}"] = {
            "timeout_s": timeout,
            "seconds": _median(seconds, 3),
            "ratio": _median([s / timeout for s in seconds], 3),
            "ratio_min": round(min(seconds) / timeout, 3),
            "ratio_max": round(max(seconds) / timeout, 3),
            "baseline_ms": _median([t["baseline_s"] * 1000 for t in trials]),
            "within_all": all(t["within"] for t in trials),
            "within_trials": sum(t["within"] for t in trials),
            "trials": len(trials),
            "reconnect_reasons": dict(reasons),
            "raw_pymysql": trials[0]["raw"],
            "seconds_per_trial": [round(s, 4) for s in seconds],
        }

    lines = [
        "| ping timeout T | detected + recovered s | ratio to T | range | "
        "fresh connect + statement ms | within 1.1 T + a fresh connect | recovered by | "
        "raw PyMySQL, read_timeout unset |",
        "|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for r in results.values():
        how = ", ".join(f"{k} x{n}" for k, n in sorted(r["reconnect_reasons"].items()))
        within = "yes" if r["within_all"] else f"**{r['within_trials']}/{r['trials']} trials**"
        lines.append(
            f"| {r['timeout_s']:g} s | {r['seconds']:.3f} | {r['ratio']:.3f} | "
            f"{r['ratio_min']:.3f}-{r['ratio_max']:.3f} | {r['baseline_ms']:.2f} | {within} | "
            f"{how or 'no reconnect'} | {r['raw_pymysql']} |"
        )
    markdown = (
        f"Through a loopback TCP proxy that, after one `{STATEMENT}`, silently drops the "
        "connection's traffic both ways while keeping its sockets open (a half-open "
        f"connection); after {PING_IDLE + 0.1:g} s idle (past `PingOnCheckout(idle="
        f"{PING_IDLE:g}, timeout=T)`), the time of the next statement: the ping's time limit, "
        "a new connection through the proxy, and the statement. Medians over "
        f"{BLACKHOLE_TRIALS} trials per T; raw PyMySQL over the same blackhole (first "
        f"trial, alongside) is waited for at most {RAW_PATIENCE:g} T.\n\n" + "\n".join(lines) + "\n"
    )
    data = {"ping_idle_s": PING_IDLE, "raw_patience_timeouts": RAW_PATIENCE, "by_timeout": results}
    return Section(
        key="blackhole",
        title="A blackholed connection: detection vs the ping timeout",
        markdown=markdown,
        data=data,
        charts=charts("blackhole", data),
    )


def charts(key: str, data: dict[str, Any]) -> list[Chart]:
    """The section's chart, from its data (see ``python -m benchmarks.charts``)."""
    if key == "recovery":
        scenarios = data["scenarios"]
        return [
            Chart(
                filename="recovery_ratios.png",
                title="First statement after a fault / fresh connect + statement",
                values={name: r["ratio"] for name, r in scenarios.items()},
                spread={name: ratio_spread(r) for name, r in scenarios.items()},
                spread_label="whiskers: lowest and highest trial",
                ylabel="ratio to a fresh connect + statement",
                target=data["target"],
            )
        ]
    timeouts = data["by_timeout"].values()
    return [
        Chart(
            filename="recovery_blackhole.png",
            title="A blackholed connection: detected and recovered within the ping timeout T",
            values={f"T = {r['timeout_s']:g} s": r["seconds"] for r in timeouts},
            spread={
                f"T = {r['timeout_s']:g} s": (
                    min(r.get("seconds_per_trial", [r["seconds"]])),
                    max(r.get("seconds_per_trial", [r["seconds"]])),
                )
                for r in timeouts
            },
            spread_label="whiskers: lowest and highest trial",
            notes={
                f"T = {r['timeout_s']:g} s": f"raw PyMySQL: {r['raw_pymysql']}"
                for r in timeouts
                if r.get("raw_pymysql")
            },
            ylabel="seconds to the answer",
        )
    ]


def run(ctx: Context) -> list[Section]:
    """The recovery section and the blackhole section."""
    return [_recovery(ctx), _blackhole(ctx)]
