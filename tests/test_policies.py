"""Policies are immutable values that refuse bad input with a clear message."""

from __future__ import annotations

import dataclasses
import math
import re
import socket
from pathlib import Path
from typing import Any

import pymysql
import pytest
import tenacity
from hypothesis import given
from hypothesis import strategies as st

from resilient_dbapi import (
    MYSQL_ERRORS,
    DeadPeerTimeout,
    ErrorKind,
    ErrorTable,
    MaxAge,
    PingOnCheckout,
    RetryOnError,
)
from resilient_dbapi.adapters._sockets import keepalive_settings, set_dead_peer_timeout
from resilient_dbapi.adapters.pymysql import PyMySQLAdapter
from resilient_dbapi.policies import ProfileError, default_policies, load, profile_names

ROOT = Path(__file__).resolve().parent.parent
DAY = 86400.0
YEAR = 365 * DAY


def test_policies_are_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        PingOnCheckout().idle = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: PingOnCheckout(idle=-1), "PingOnCheckout: idle must be >= 0"),
        (lambda: PingOnCheckout(timeout=0), "PingOnCheckout: timeout must be > 0"),
        (lambda: PingOnCheckout(timeout=math.nan), "timeout must be > 0 and <= 86400"),
        (lambda: PingOnCheckout(idle=1, skip_recent=2), "skip_recent .* must be < idle"),
        (lambda: MaxAge(seconds=0), "MaxAge: seconds must be > 0"),
        (lambda: MaxAge(jitter=0.9), "jitter must be between 0 and 0.5"),
        (lambda: RetryOnError(attempts=0), "attempts must be >= 1"),
        (lambda: RetryOnError(attempts=None, deadline=None), "cannot both be None"),
        (lambda: RetryOnError(deadline=-1), "deadline must be > 0"),
        (lambda: RetryOnError(backoff=2, max_backoff=1), "max_backoff .* must be >= backoff"),
        (lambda: RetryOnError(resend=-1), "resend must be an int >= 0"),
    ],
)
def test_bad_values_name_the_argument_and_the_range(make: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()  # type: ignore[operator]


@pytest.mark.parametrize(
    "make",
    [
        lambda: PingOnCheckout(idle="30"),
        lambda: PingOnCheckout(timeout=True),
        lambda: MaxAge(follow_wait_timeout="yes"),
        lambda: RetryOnError(attempts=2.5),
        lambda: RetryOnError(stop="never"),
    ],
)
def test_wrong_types_raise_type_error(make: object) -> None:
    with pytest.raises(TypeError):
        make()  # type: ignore[operator]


_HUGE = 10**400  # an int too big for a float: math.isnan() on it overflows
_TIMES = [  # (policy, field, the largest value allowed, whether 0 is allowed)
    (PingOnCheckout, "idle", DAY, True),
    (PingOnCheckout, "timeout", DAY, False),
    (PingOnCheckout, "skip_recent", DAY, True),
    (RetryOnError, "deadline", DAY, False),
    (RetryOnError, "backoff", DAY, True),
    (RetryOnError, "max_backoff", DAY, True),
    (MaxAge, "seconds", YEAR, False),
]


def _make(cls: Any, name: str, value: object) -> Any:
    # The other arguments make room for the value under test (skip_recent < idle,
    # backoff <= max_backoff).
    extra: dict[str, object] = {}
    if cls is PingOnCheckout and name == "skip_recent":
        extra = {"idle": 0}
    if cls is RetryOnError and name == "backoff":
        extra = {"max_backoff": DAY}
    if cls is RetryOnError and name == "max_backoff":
        extra = {"backoff": 0}
    return cls(**{name: value, **extra})


@pytest.mark.parametrize(("cls", "name", "high", "zero"), _TIMES)
@pytest.mark.parametrize(
    "bad",
    [
        *(1e300, math.inf, -math.inf, math.nan, -1, pytest.param(_HUGE, id="10**400")),
        *("past", "above", "zero"),  # just past the bound, or 0 where it is not allowed
    ],
)
def test_times_are_bounded_at_construction(
    cls: Any, name: str, high: float, zero: bool, bad: object
) -> None:
    if bad == "past":
        bad = math.nextafter(high, math.inf)
    elif bad == "above":
        bad = int(high) + 1
    elif bad == "zero":
        if zero:
            return
        bad = 0
    low = ">=" if zero else ">"
    shown = "an int of 1329 bits" if bad == _HUGE else re.escape(repr(bad))
    allowed = f"{low} 0 and <= {high:.0f} ({'one year' if high == YEAR else 'one day'})"
    message = f"^{cls.__name__}: {name} must be {re.escape(allowed)}, got {shown}$"
    with pytest.raises(ValueError, match=message):
        _make(cls, name, bad)


@pytest.mark.parametrize(("cls", "name", "high", "zero"), _TIMES)
@pytest.mark.parametrize("bad", [True, False, "30", None, [1]])
def test_times_of_the_wrong_type_raise_type_error(
    cls: Any, name: str, high: float, zero: bool, bad: object
) -> None:
    if bad is None and name == "deadline":
        return  # None: no deadline (attempts end the retries)
    message = rf"^{cls.__name__}: {name} must be a number of seconds .* <= {high:.0f} .*got "
    with pytest.raises(TypeError, match=message):
        _make(cls, name, bad)


@pytest.mark.parametrize(("cls", "name", "high", "zero"), _TIMES)
def test_the_largest_time_allowed_is_kept(cls: Any, name: str, high: float, zero: bool) -> None:
    assert getattr(_make(cls, name, high), name) == high
    assert getattr(_make(cls, name, int(high)), name) == high  # an int is taken as seconds


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: MaxAge(jitter=math.nan), ValueError, r"jitter must be between 0 and 0.5, got nan"),
        (lambda: MaxAge(jitter=math.inf), ValueError, r"jitter must be between 0 and 0.5"),
        (lambda: MaxAge(jitter=_HUGE), ValueError, r"between 0 and 0.5, got an int of 1329 bits"),
        (lambda: MaxAge(jitter=True), TypeError, r"jitter must be a number between 0 and 0.5"),
        (lambda: RetryOnError(attempts=True), TypeError, r"attempts must be an int >= 1 or None"),
        (lambda: RetryOnError(attempts=-_HUGE), ValueError, r"got a negative int of 1329 bits"),
        (lambda: RetryOnError(resend=True), TypeError, r"resend must be an int >= 0, got True"),
        (lambda: RetryOnError(resend=1.0), TypeError, r"resend must be an int >= 0, got 1.0"),
        (lambda: PingOnCheckout(timeout=10**5000), ValueError, r"got an int of 16610 bits"),
    ],
)
def test_other_numbers_are_checked(make: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        make()


def test_the_longest_times_still_work() -> None:
    ping = PingOnCheckout(idle=DAY, timeout=DAY, skip_recent=DAY - 1)
    assert ping.ping_timeout(DAY) == DAY and ping.ping_timeout(DAY - 1) is None
    assert MaxAge(seconds=YEAR, jitter=0.5).lifetime(0.999) > YEAR / 2
    retry = RetryOnError(attempts=None, deadline=DAY, backoff=DAY, max_backoff=DAY)
    assert retry.connect_wait(1, 0.0) is None  # the first wait would end past the deadline
    retry = RetryOnError(attempts=10**6, deadline=None, backoff=DAY, max_backoff=DAY)
    wait = retry.connect_wait(10**5, 0.0)  # 2 ** 99999 * backoff: tenacity caps it
    assert wait is not None and DAY <= wait <= 2 * DAY


@pytest.mark.parametrize(
    "bad",
    [0, 0.5, -1, math.nan, math.inf, math.nextafter(DAY, math.inf), int(DAY) + 1, _HUGE],
)
def test_the_dead_peer_timeout_is_bounded(bad: object) -> None:
    shown = "an int of 1329 bits" if bad == _HUGE else re.escape(repr(bad))
    message = rf"^DeadPeerTimeout: seconds must be >= 1 and <= 86400 \(one day\), got {shown}$"
    with pytest.raises(ValueError, match=message):
        DeadPeerTimeout(seconds=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [True, "10", None, [1]])
def test_the_dead_peer_timeout_takes_a_number(bad: object) -> None:
    with pytest.raises(TypeError, match=r"^DeadPeerTimeout: seconds must be a number of seconds"):
        DeadPeerTimeout(seconds=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("seconds", "settings"),
    [
        (10, (5, 1, 5, 10000)),  # the default: what was measured (found in 10.4 s)
        (1, (1, 1, 5, 1000)),
        (2.5, (1, 1, 5, 2500)),
        (30, (15, 3, 5, 30000)),
        (DAY, (32767, 8640, 5, 86400000)),  # within Linux's ceilings (32767 s)
    ],
)
def test_the_dead_peer_timeout_becomes_socket_settings(
    seconds: float, settings: tuple[int, int, int, int]
) -> None:
    policy = DeadPeerTimeout(seconds=seconds)
    assert policy.seconds == seconds and isinstance(policy.seconds, float)
    assert keepalive_settings(policy.seconds) == settings


@pytest.mark.parametrize("given", ["socket object", "descriptor"])
def test_the_dead_peer_settings_land_on_the_tcp_socket(given: str) -> None:
    """Set through the driver's socket object (PyMySQL, aiomysql, mysql-connector: no
    duplicate descriptor, five system calls fewer per reconnect) or through its
    descriptor (mysqlclient, psycopg): the same kernel settings, the socket left open; a
    unix socket left alone."""
    tcp = socket.IPPROTO_TCP
    with (
        socket.create_server(("127.0.0.1", 0)) as listener,
        socket.create_connection(listener.getsockname()) as sock,
    ):
        set_dead_peer_timeout(sock if given == "socket object" else sock.fileno(), 30.0)
        assert sock.fileno() >= 0  # still the driver's, open
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        settings = tuple(
            sock.getsockopt(tcp, option)
            for option in (socket.TCP_KEEPIDLE, socket.TCP_KEEPINTVL, socket.TCP_KEEPCNT)
        )
        assert settings == keepalive_settings(30.0)[:3]
        assert sock.getsockopt(tcp, socket.TCP_USER_TIMEOUT) == 30000
    ours, theirs = socket.socketpair()
    with ours, theirs:
        set_dead_peer_timeout(ours if given == "socket object" else ours.fileno(), 30.0)
        assert ours.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0


def test_the_longest_ping_timeout_reaches_pymysql_socket() -> None:
    """The bound is what the driver takes: PyMySQL sets the ping's timeout on its socket,
    which overflows far past a day (PingOnCheckout(timeout=1e300) used to pass, then
    failed with OverflowError at the first ping)."""
    timeout = PingOnCheckout(timeout=DAY).timeout
    adapter = PyMySQLAdapter()
    ours, server = socket.socketpair()
    with ours, server, ours.makefile("rb") as rfile:
        raw = pymysql.connections.Connection(defer_connect=True)
        raw._sock, raw._rfile, raw._next_seq_id = ours, rfile, 0
        raw._current_timeout = None  # what connect() sets (PyMySQL >= 1.2)
        # The server's OK packet: length 7, sequence 1, header 0, status AUTOCOMMIT.
        server.sendall(b"\x07\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00")
        adapter.ping(raw, timeout)
        assert server.recv(16) == b"\x01\x00\x00\x00\x0e"  # COM_PING was sent
        assert ours.gettimeout() == DAY
        with pytest.raises(OverflowError):
            adapter.ping(raw, 1e300)  # what the bound keeps away from the driver


@given(
    idle=st.one_of(st.floats(allow_nan=True), st.integers(), st.none(), st.text()),
    timeout=st.one_of(st.floats(allow_nan=True), st.integers(), st.booleans()),
)
def test_random_values_are_accepted_or_refused_clearly(idle: object, timeout: object) -> None:
    try:
        policy = PingOnCheckout(idle=idle, timeout=timeout)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        assert "PingOnCheckout:" in str(exc)
    else:
        assert 0 <= policy.idle <= DAY and 0 < policy.timeout <= DAY


ANY = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10**6),
    st.floats(allow_nan=True),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
)


@given(seconds=ANY, jitter=ANY, follow=ANY)
def test_random_max_age_values(seconds: object, jitter: object, follow: object) -> None:
    try:
        policy = MaxAge(seconds=seconds, jitter=jitter, follow_wait_timeout=follow)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        assert str(exc).startswith("MaxAge: ")
    else:
        assert 0 < policy.seconds <= YEAR and 0 <= policy.jitter <= 0.5
        assert 0 < policy.lifetime(0.999) <= policy.seconds


@given(attempts=ANY, deadline=ANY, backoff=ANY, max_backoff=ANY, resend=ANY)
def test_random_retry_values(
    attempts: object, deadline: object, backoff: object, max_backoff: object, resend: object
) -> None:
    try:
        policy = RetryOnError(
            attempts=attempts,
            deadline=deadline,
            backoff=backoff,  # type: ignore[arg-type]
            max_backoff=max_backoff,
            resend=resend,
        )  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        assert str(exc).startswith("RetryOnError: ")
    else:
        wait = policy.connect_wait(1, 0.0)
        assert wait is None or 0 <= wait <= policy.max_backoff + policy.backoff


def test_tenacity_strategies_compose() -> None:
    policy = RetryOnError(
        stop=tenacity.stop_after_attempt(2) | tenacity.stop_after_delay(9),
        wait=tenacity.wait_fixed(0.25),
    )
    assert policy.connect_wait(1, 0.0) == 0.25
    assert policy.connect_wait(2, 0.0) is None


def test_error_table_is_data() -> None:
    assert MYSQL_ERRORS.kind(2013) is ErrorKind.DEAD
    assert MYSQL_ERRORS.kind(1213) is ErrorKind.TRANSACTION_ROLLED_BACK
    assert MYSQL_ERRORS.kind(1045) is ErrorKind.CONNECT_FATAL
    assert MYSQL_ERRORS.kind(None) is ErrorKind.OTHER
    custom = MYSQL_ERRORS.adding(ErrorKind.DEAD, 9999).removing(4031)
    assert custom.kind(9999) is ErrorKind.DEAD and custom.kind(4031) is ErrorKind.OTHER
    assert MYSQL_ERRORS.kind(9999) is ErrorKind.OTHER  # the original is unchanged
    with pytest.raises(TypeError, match="not an ErrorKind"):
        ErrorTable({1: "dead"})  # type: ignore[dict-item]


def test_default_profile_matches_the_defaults() -> None:
    assert load(ROOT / "policies" / "default.toml") == default_policies()
    assert load("web") == load("default") == default_policies()


@pytest.mark.parametrize("path", sorted((ROOT / "policies").glob("*.toml")))
def test_every_profile_in_the_policies_folder_loads(path: Path) -> None:
    policies = load(path)
    assert policies
    assert load(path.stem) == policies  # the same profile ships inside the package


def test_the_profiles_differ_as_documented() -> None:
    strict = {type(p): p for p in load("strict")}
    assert strict[RetryOnError].resend == 0 and strict[PingOnCheckout].skip_recent == 0
    paranoid = {type(p): p for p in load("paranoid")}
    assert paranoid[PingOnCheckout].idle == 0
    assert paranoid[DeadPeerTimeout].seconds < DeadPeerTimeout().seconds
    batch = {type(p): p for p in load("batch")}
    assert batch[RetryOnError].deadline is not None and batch[RetryOnError].deadline >= 300
    assert set(profile_names()) >= {"default", "web", "batch", "strict", "paranoid"}


def test_the_cluster_profiles_differ_as_documented() -> None:
    defaults = {type(p): p for p in default_policies()}
    galera = {type(p): p for p in load("galera")}
    assert galera[DeadPeerTimeout].seconds == 5.0
    assert galera[RetryOnError] == defaults[RetryOnError]
    replicated = {type(p): p for p in load("replicated")}
    retry = replicated[RetryOnError]
    assert retry.attempts is None and retry.deadline == 60.0  # rounds bounded by time alone
    assert load("postgres_streaming") == load("replicated")
    proxied = {type(p): p for p in load("behind_proxy")}
    assert proxied[MaxAge].seconds == 600.0 and not proxied[MaxAge].follow_wait_timeout
    assert set(profile_names()) >= {"galera", "replicated", "postgres_streaming", "behind_proxy"}


def test_a_retry_limit_may_be_none_in_a_profile_and_nothing_else(tmp_path: Path) -> None:
    profile = tmp_path / "p.toml"
    profile.write_text('extends = "default"\n[retry_on_error]\ndeadline = "none"\n')
    retry = {type(p): p for p in load(profile)}[RetryOnError]
    assert retry.deadline is None and retry.attempts == 20
    # Both unbounded: retries must end.
    profile.write_text(
        'extends = "default"\n[retry_on_error]\ndeadline = "none"\nattempts = "none"\n'
    )
    with pytest.raises(ProfileError, match='attempts and deadline are both "none"'):
        load(profile)
    # The same when one of them comes from the profile extended.
    (tmp_path / "base.toml").write_text('extends = "replicated"\n')
    profile.write_text('extends = "base.toml"\n[retry_on_error]\ndeadline = "None"\n')
    with pytest.raises(ProfileError, match="comes from the profile extended"):
        load(profile)
    profile.write_text('extends = "default"\n[retry_on_error]\nbackoff = "none"\n')
    with pytest.raises(ProfileError, match="backoff"):
        load(profile)
    profile.write_text('extends = "default"\n[max_age]\nseconds = "none"\n')
    with pytest.raises(ProfileError, match="seconds"):
        load(profile)


def test_unknown_profile_names_list_the_known_ones() -> None:
    with pytest.raises(ProfileError, match=r"no policy profile named 'fast'.*batch.*strict"):
        load("fast")


def test_malformed_profiles_name_the_file_and_the_key(tmp_path: Path) -> None:
    bad_key = tmp_path / "bad.toml"
    bad_key.write_text("[max_age]\nsecond = 10\n")
    with pytest.raises(ProfileError, match=r"bad.toml.*max_age.second.*allowed: "):
        load(bad_key)
    bad_value = tmp_path / "neg.toml"
    bad_value.write_text('extends = "default"\n[ping_on_checkout]\ntimeout = -1\n')
    with pytest.raises(ProfileError, match=r"neg.toml.*\[ping_on_checkout\].*timeout must be > 0"):
        load(bad_value)
    with pytest.raises(ProfileError, match="cannot be read"):
        load(tmp_path / "missing.toml")


_SECTION_NAMES = ["ping_on_checkout", "max_age", "retry_on_error", "dead_peer_timeout"]
_KEEP_OR_DROP = r'extends = "default".*enabled = false in its section'


@pytest.mark.parametrize("text", ["", "\n", "# nothing yet\n"])
def test_an_empty_profile_is_refused(tmp_path: Path, text: str) -> None:
    empty = tmp_path / "empty.toml"
    empty.write_text(text)
    with pytest.raises(ProfileError, match=rf"empty.toml' is empty: .*no checks.*{_KEEP_OR_DROP}"):
        load(empty)


def test_a_profile_that_leaves_a_policy_out_is_refused(tmp_path: Path) -> None:
    partial = tmp_path / "partial.toml"
    partial.write_text("[ping_on_checkout]\nidle = 7.0\n")
    left_out = (
        r"\[max_age\], \[retry_on_error\], \[dead_peer_timeout\] without saying whether to "
        "keep or drop them"
    )
    with pytest.raises(
        ProfileError, match=rf"partial.toml' leaves out {left_out}.*{_KEEP_OR_DROP}"
    ):
        load(partial)
    partial.write_text("[ping_on_checkout]\n[max_age]\n[retry_on_error]\n")
    with pytest.raises(
        ProfileError, match=r"leaves out \[dead_peer_timeout\] .* keep or drop it\."
    ):
        load(partial)


def test_a_profile_drops_a_policy_only_when_it_says_so(tmp_path: Path) -> None:
    profile = tmp_path / "p.toml"
    profile.write_text(
        "[ping_on_checkout]\nidle = 7.0\n[max_age]\nenabled = false\n[retry_on_error]\n"
        "[dead_peer_timeout]\nseconds = 30\n"
    )
    assert load(profile) == [PingOnCheckout(idle=7.0), RetryOnError(), DeadPeerTimeout(30)]
    profile.write_text(
        "[ping_on_checkout]\nenabled = true\n[max_age]\n[retry_on_error]\n[dead_peer_timeout]\n"
    )
    assert load(profile) == default_policies()  # empty sections: each policy's defaults
    profile.write_text("".join(f"[{s}]\nenabled = false\n" for s in _SECTION_NAMES))
    assert load(profile) == []  # a bare proxy, as policies=[]: said in so many words


def test_extends_keeps_what_is_not_written(tmp_path: Path) -> None:
    only = tmp_path / "only.toml"
    only.write_text('extends = "default"\n')
    assert load(only) == default_policies()
    profile = tmp_path / "p.toml"
    profile.write_text(
        'extends = "batch"\n[ping_on_checkout]\nidle = 120.0\n[max_age]\nenabled = false\n'
    )
    batch = {type(p): p for p in load("batch")}
    assert load(profile) == [
        dataclasses.replace(batch[PingOnCheckout], idle=120.0),  # batch's timeout kept
        batch[RetryOnError],
        batch[DeadPeerTimeout],
    ]
    # A chain, by a path relative to the extending file; a dropped policy comes back
    # only when a section says so.
    child = tmp_path / "sub" / "child.toml"
    child.parent.mkdir()
    child.write_text(
        'extends = "../p.toml"\n[max_age]\nseconds = 60\n[retry_on_error]\nresend = 0\n'
    )
    assert load(child) == [
        dataclasses.replace(batch[PingOnCheckout], idle=120.0),
        MaxAge(seconds=60),
        dataclasses.replace(batch[RetryOnError], resend=0),
        batch[DeadPeerTimeout],
    ]


def test_extends_is_checked(tmp_path: Path) -> None:
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    a.write_text('extends = "b.toml"\n')
    b.write_text('extends = "a.toml"\n')
    with pytest.raises(ProfileError, match=r"a.toml' extends itself: .*a.toml -> .*b.toml -> "):
        load(a)
    a.write_text("extends = 3\n")
    with pytest.raises(ProfileError, match=r"a.toml': extends must be a profile's name .*got 3"):
        load(a)
    a.write_text('extends = "fast"\n')
    with pytest.raises(ProfileError, match=r"a.toml': extends = 'fast': no policy profile named"):
        load(a)
    a.write_text('[max_age]\nseconds = 60\nextends = "default"\n')  # TOML: inside [max_age]
    with pytest.raises(ProfileError, match=r"max_age.extends; .*extends goes before the first"):
        load(a)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[max_age]\nenabled = 0\n", r"max_age.enabled must be true or false, got 0"),
        (
            "[max_age]\nenabled = false\nseconds = 60\n",
            r"\[max_age\] has enabled = false and also seconds: a dropped policy takes no",
        ),
        ("max_age = false\n", r"max_age must be a table: .*enabled = false to drop"),
        ("[pool]\nsize = 3\n", r"unknown section \[pool\]; allowed: \[ping_on_checkout\]"),
        (
            "[ping_on_checkout]\ntimeout = 1e300\n",
            r"\[ping_on_checkout\]: PingOnCheckout: timeout must be > 0 and <= 86400 \(one day\)",
        ),
    ],
)
def test_sections_are_checked(tmp_path: Path, text: str, message: str) -> None:
    profile = tmp_path / "p.toml"
    profile.write_text('extends = "default"\n' + text)
    with pytest.raises(ProfileError, match=message):
        load(profile)


def test_replay_is_opt_in_in_a_profile(tmp_path: Path) -> None:
    """No shipped profile replays; a profile turns replay on by writing its section (even
    empty), with the policy's own checks on its keys; one that extends it inherits it."""
    from resilient_dbapi import ReplayTransaction

    for name in profile_names():
        assert not any(isinstance(p, ReplayTransaction) for p in load(name)), name
    on = tmp_path / "on.toml"
    on.write_text('extends = "default"\n[replay_transaction]\nmax_statements = 10\n')
    (replay,) = [p for p in load(on) if isinstance(p, ReplayTransaction)]
    assert replay == ReplayTransaction(max_statements=10)
    child = tmp_path / "child.toml"
    child.write_text('extends = "on.toml"\n[max_age]\nseconds = 600\n')
    assert ReplayTransaction(max_statements=10) in load(child)
    whole = tmp_path / "whole.toml"
    whole.write_text("".join(f"[{s}]\n" for s in _SECTION_NAMES))  # every required one
    assert not any(isinstance(p, ReplayTransaction) for p in load(whole))
    on.write_text('extends = "default"\n[replay_transaction]\nmax_bytes = 0\n')
    with pytest.raises(ProfileError, match=r"\[replay_transaction\].*max_bytes must be an int"):
        load(on)
    on.write_text('extends = "default"\n[replay_transaction]\nmax_rows = 5\n')
    with pytest.raises(ProfileError, match=r"unknown key replay_transaction\.max_rows"):
        load(on)
