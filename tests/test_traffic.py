"""Traffic counting and the detectors, on synthetic but realistic event streams; DenyList on real files."""

from __future__ import annotations

import math
import os
from dataclasses import replace
from pathlib import Path

import pytest

from watchdog.config import default_config
from watchdog.daemon.evaluate import traffic_thresholds
from watchdog.logwatch import LogEvent
from watchdog.models import Health
from watchdog.traffic import (
    DENY_LIST_HEADER,
    MAX_SOURCES_PER_MINUTE,
    OTHER_SOURCES,
    DenyList,
    EndpointContext,
    MinuteCount,
    TrafficCounter,
    deny_entry,
    detect_jump,
    detect_keep_warm,
    detect_ping_rate,
    detect_rate,
    is_protected,
    poisson_tail,
    requests_from_health,
)

T0 = 1_772_323_200.0  # 2026-03-01T00:00:00Z, a minute boundary
DAY = 86_400.0
THRESHOLDS = traffic_thresholds(default_config(env={}))
"""The thresholds users get: ``[pings]`` of the built-in configuration, plus the detectors' constants."""


def request(ts: float, source: str = "10.0.0.1", endpoint: str = "ep1") -> LogEvent:
    return LogEvent(ts, endpoint, "request", source=source)


def ping(ts: float, worker: str = "w1", jobs: str | None = None, endpoint: str = "ep1") -> LogEvent:
    return LogEvent(ts, endpoint, "ping", source=worker, job_id=jobs, worker_id=worker)


def heartbeat(counter: TrafficCounter, start: float, end: float, every_s: float, **kwargs: object) -> None:
    for i in range(math.ceil((end - start) / every_s)):
        counter.add(ping(start + i * every_s, **kwargs))  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- counting


def test_counts_per_endpoint_source_and_minute() -> None:
    counter = TrafficCounter()
    counter.add_events(
        [
            request(T0 + 1),
            request(T0 + 59),
            request(T0 + 60),
            request(T0 + 5, source="10.0.0.2"),
            ping(T0 + 10),
            LogEvent(T0 + 20, "ep1", "request"),
        ]
    )
    assert counter.count("ep1", "10.0.0.1", T0) == MinuteCount(requests=2, pings=0)
    assert counter.count("ep1", "10.0.0.1", T0 + 60) == MinuteCount(requests=1, pings=0)
    assert counter.count("ep1", "w1", T0 + 30) == MinuteCount(requests=0, pings=1)
    assert counter.by_source("ep1", T0, T0 + 60) == {
        "10.0.0.1": MinuteCount(2, 0),
        "10.0.0.2": MinuteCount(1, 0),
        "w1": MinuteCount(0, 1),
        "(unknown)": MinuteCount(1, 0),
    }
    assert counter.endpoint_requests("ep1", T0, T0 + 120) == 5


def test_health_deltas_do_not_double_count_what_the_logs_saw() -> None:
    counter = TrafficCounter()
    for second in range(3):
        counter.add(request(T0 + second))
    counter.add_health_delta("ep1", T0 + 30, requests=3)  # same minute, same three jobs
    counter.add_health_delta("ep1", T0 + 60, requests=4)  # a minute the logs missed
    counter.add_health_delta("ep2", T0, requests=2)  # an endpoint without request logs
    assert counter.endpoint_requests("ep1", T0, T0 + 120) == 7
    assert counter.endpoint_requests("ep2", T0, T0 + 120) == 2


def test_requests_from_health_counts_new_jobs_and_never_goes_negative() -> None:
    before = Health(jobs_completed=10, jobs_failed=1, jobs_in_progress=1, jobs_in_queue=0)
    after = Health(jobs_completed=12, jobs_failed=1, jobs_in_progress=0, jobs_in_queue=3)
    assert requests_from_health(before, after) == 4
    assert requests_from_health(after, Health()) == 0


def test_jobs_are_learnt_from_heartbeat_pings() -> None:
    counter = TrafficCounter()
    counter.add(ping(T0, worker="w1", jobs="job-a"))
    counter.add(ping(T0 + 10, worker="w1", jobs="job-a,job-b"))
    counter.add(ping(T0 + 20, worker="w2", jobs="job-c", endpoint="ep2"))
    counter.add(ping(T0 + 30, worker="w1"))  # idle ping: no job ids
    jobs = counter.jobs_in_pings(since=T0)
    assert jobs == {
        "ep1": {"job-a": ("w1", T0, T0 + 10), "job-b": ("w1", T0 + 10, T0 + 10)},
        "ep2": {"job-c": ("w2", T0 + 20, T0 + 20)},
    }
    worker, first_seen, last_seen = jobs["ep1"]["job-a"]
    assert (worker, first_seen, last_seen) == ("w1", T0, T0 + 10)
    assert counter.jobs_in_pings(since=T0 + 15) == {"ep2": {"job-c": ("w2", T0 + 20, T0 + 20)}}
    assert counter.pings_for_job("ep1", "job-a") == 2


def test_prune_forgets_old_data() -> None:
    counter = TrafficCounter()
    counter.add(request(T0))
    counter.add(ping(T0, jobs="old"))
    counter.add(request(T0 + 3600))
    counter.prune(before=T0 + 1800)
    assert counter.endpoint_requests("ep1", 0, T0 + DAY) == 1
    assert counter.jobs_in_pings(since=0) == {}
    assert counter.warm_run("ep1", "10.0.0.1") == (T0 + 3600, T0 + 3600, 1)


# ---------------------------------------------------------------------------------------------- rate


def test_request_flood_over_the_last_full_minute_is_flagged_with_its_source() -> None:
    counter = TrafficCounter()
    for i in range(300):
        counter.add(request(T0 + i * 0.2, source="203.0.113.9"))
    counter.add(request(T0 + 30, source="10.0.0.1"))
    findings = detect_rate(counter, now=T0 + 61, thresholds=THRESHOLDS)
    assert len(findings) == 1
    finding = findings[0]
    assert (finding.kind, finding.endpoint_id, finding.source, finding.since) == (
        "rate",
        "ep1",
        "203.0.113.9",
        T0,
    )
    assert "301 requests in the last full minute (limit 30/min)" in finding.detail
    # The minute is not full yet at T0 + 59: nothing to say.
    assert detect_rate(counter, now=T0 + 59, thresholds=THRESHOLDS) == []


def test_a_burst_in_one_minute_is_not_sustained_over_three() -> None:
    counter = TrafficCounter()
    for i in range(300):
        counter.add(request(T0 + 120 + i * 0.2))
    for minute in (0, 1):
        for i in range(10):
            counter.add(request(T0 + minute * 60 + i))
    strict = replace(THRESHOLDS, rate_sustain_minutes=3)
    assert detect_rate(counter, now=T0 + 181, thresholds=strict) == []
    assert [f.kind for f in detect_rate(counter, now=T0 + 181, thresholds=THRESHOLDS)] == ["rate"]


def test_a_heartbeat_every_10_s_is_not_a_flood() -> None:
    counter = TrafficCounter()
    for worker in ("w1", "w2", "w3"):
        heartbeat(counter, T0, T0 + DAY, 10.0, worker=worker)
    now = T0 + DAY
    assert detect_rate(counter, now, THRESHOLDS) == []
    assert detect_ping_rate(counter, now, THRESHOLDS) == []


def test_a_worker_in_a_busy_ping_loop_is_flagged() -> None:
    counter = TrafficCounter()
    heartbeat(counter, T0, T0 + 120, 0.5, worker="w-broken")  # RUNPOD_PING_INTERVAL=500 → sleeps 0 s
    heartbeat(counter, T0, T0 + 120, 10.0, worker="w-ok")
    findings = detect_ping_rate(counter, now=T0 + 120, thresholds=THRESHOLDS)
    assert [(f.kind, f.worker_id) for f in findings] == [("ping_rate", "w-broken")]
    assert "sent 120 heartbeat pings in the last full minute (one every 0.5 s" in findings[0].detail


def test_endpoint_wide_ping_rate_limit() -> None:
    counter = TrafficCounter()
    heartbeat(counter, T0, T0 + 60, 0.25, worker="w1")
    findings = detect_rate(counter, now=T0 + 60, thresholds=THRESHOLDS)
    assert [(f.kind, f.source) for f in findings] == [("ping_rate", "w1")]
    assert "240 heartbeat pings" in findings[0].detail


# ---------------------------------------------------------------------------------------------- hung job


def test_5000_pings_a_day_on_one_job_is_flagged() -> None:
    counter = TrafficCounter()
    heartbeat(counter, T0, T0 + DAY, DAY / 5000, worker="w7", jobs="job-hung")
    findings = detect_ping_rate(counter, now=T0 + DAY, thresholds=THRESHOLDS)
    assert len(findings) == 1
    finding = findings[0]
    assert (finding.kind, finding.job_id, finding.worker_id, finding.since) == (
        "ping_rate",
        "job-hung",
        "w7",
        T0,
    )
    assert "reported in progress by 5000 heartbeat pings over 24.0 h (limit 720)" in finding.detail
    assert finding.key == "traffic:ping_rate:ep1::w7:job-hung"


def test_many_short_jobs_on_a_normal_heartbeat_are_not_flagged() -> None:
    counter = TrafficCounter()
    for i in range(int(DAY / 10)):
        counter.add(ping(T0 + i * 10, worker="w1", jobs=f"job-{i // 6}"))  # each job lasts a minute
    assert detect_ping_rate(counter, now=T0 + DAY, thresholds=THRESHOLDS) == []


def test_a_long_job_that_already_ended_is_not_flagged() -> None:
    counter = TrafficCounter()
    heartbeat(counter, T0, T0 + 3 * 3600, 10.0, worker="w1", jobs="job-long")  # 1080 pings, then done
    heartbeat(counter, T0 + 3 * 3600, T0 + 4 * 3600, 10.0, worker="w1")
    assert detect_ping_rate(counter, now=T0 + 4 * 3600, thresholds=THRESHOLDS) == []
    assert [f.job_id for f in detect_ping_rate(counter, now=T0 + 3 * 3600, thresholds=THRESHOLDS)] == [
        "job-long"
    ]


# ---------------------------------------------------------------------------------------------- keep-warm


def test_keep_warm_bot_every_3_s_with_tiny_jobs_for_40_min_is_flagged() -> None:
    counter = TrafficCounter()
    for i in range(800):  # 40 minutes
        counter.add(request(T0 + i * 3.0, source="bot.example"))
    context = {"ep1": EndpointContext(idle_timeout_s=5, mean_execution_s=0.2)}
    now = T0 + 800 * 3.0
    findings = detect_keep_warm(counter, now, THRESHOLDS, context)
    assert len(findings) == 1
    finding = findings[0]
    assert (finding.kind, finding.source, finding.since) == ("keep_warm", "bot.example", T0)
    assert "800 requests over 40 min, one every 3.0 s" in finding.detail
    assert "busy 6.7%" in finding.detail
    # The same bot as the daemon meets it, minute by minute: not long enough at 20 minutes, flagged at 31.
    live = TrafficCounter()
    for i in range(400):
        live.add(request(T0 + i * 3.0, source="bot.example"))
    assert detect_keep_warm(live, T0 + 20 * 60, THRESHOLDS, context) == []
    for i in range(400, 620):
        live.add(request(T0 + i * 3.0, source="bot.example"))
    assert len(detect_keep_warm(live, T0 + 31 * 60, THRESHOLDS, context)) == 1


def test_keep_warm_not_flagged_for_steady_real_work_or_spaced_requests() -> None:
    counter = TrafficCounter()
    for i in range(800):
        counter.add(request(T0 + i * 3.0, source="busy-app"))
    busy_context = {"ep1": EndpointContext(idle_timeout_s=5, mean_execution_s=2.5)}
    assert detect_keep_warm(counter, T0 + 2400, THRESHOLDS, busy_context) == []

    spaced = TrafficCounter()
    for i in range(100):  # steady traffic, but each gap lets the worker scale down
        spaced.add(request(T0 + i * 30.0, source="cron"))
    tiny_jobs = {"ep1": EndpointContext(idle_timeout_s=5, mean_execution_s=0.2)}
    assert detect_keep_warm(spaced, T0 + 2990, THRESHOLDS, tiny_jobs) == []


def test_keep_warm_uses_a_given_busy_ratio_and_stays_silent_without_context() -> None:
    counter = TrafficCounter()
    for i in range(800):
        counter.add(request(T0 + i * 3.0, source="bot"))
    now = T0 + 2400
    assert detect_keep_warm(counter, now, THRESHOLDS, {}) == []
    assert detect_keep_warm(counter, now, THRESHOLDS, {"ep1": EndpointContext(idle_timeout_s=5)}) == []
    flagged = detect_keep_warm(
        counter, now, THRESHOLDS, {"ep1": EndpointContext(idle_timeout_s=5, busy_ratio=0.05)}
    )
    assert [f.source for f in flagged] == ["bot"]
    # The bot stopped more than one idle timeout ago: the worker has scaled down, nothing to cut.
    assert detect_keep_warm(counter, now + 10, THRESHOLDS, {"ep1": EndpointContext(5, busy_ratio=0.05)}) == []


# ---------------------------------------------------------------------------------------------- jump


@pytest.mark.parametrize(
    ("k", "lam", "expected"),
    [
        (0, 3.0, 1.0),
        (1, 1.0, 1 - math.exp(-1)),
        (3, 1.0, 1 - math.exp(-1) * 2.5),
        (5, 5.0, 1 - math.exp(-5) * (1 + 5 + 12.5 + 125 / 6 + 625 / 24)),
        (1, 0.0, 0.0),
    ],
)
def test_poisson_tail_exact_values(k: int, lam: float, expected: float) -> None:
    assert poisson_tail(k, lam) == pytest.approx(expected, rel=1e-9, abs=1e-15)


def test_poisson_tail_is_stable_far_in_the_tail_and_at_large_rates() -> None:
    assert 0 < poisson_tail(40, 100 / 24) < 1e-15
    assert poisson_tail(10_000, 10_000.0) == pytest.approx(0.5, abs=0.01)
    assert poisson_tail(2000, 10.0) == 0.0 or poisson_tail(2000, 10.0) < 1e-300


def steady_baseline(counter: TrafficCounter, per_day: int, days: int) -> float:
    """``per_day`` requests a day, evenly spread, for ``days`` days; returns when it ends."""
    spacing = DAY / per_day
    for i in range(per_day * days):
        counter.add(request(T0 + i * spacing))
    return T0 + days * DAY


def test_jump_at_tiny_volume_40_in_an_hour_against_100_a_day_is_flagged() -> None:
    counter = TrafficCounter()
    hour_start = steady_baseline(counter, per_day=100, days=7)
    for i in range(40):
        counter.add(request(hour_start + i * 60, source="198.51.100.4"))
    findings = detect_jump(counter, now=hour_start + 3600, thresholds=THRESHOLDS)
    assert len(findings) == 1
    finding = findings[0]
    assert (finding.kind, finding.source, finding.since) == ("jump", "198.51.100.4", hour_start)
    assert "40 requests in the last hour against a usual 4.2 per hour" in finding.detail


def test_jump_at_tiny_volume_6_in_an_hour_is_normal() -> None:
    counter = TrafficCounter()
    hour_start = steady_baseline(counter, per_day=100, days=7)
    for i in range(6):
        counter.add(request(hour_start + i * 600))
    assert detect_jump(counter, hour_start + 3600, THRESHOLDS) == []
    # Not just the guards (jump_min_count, and jump_factor: 6 is under 4 × 4.2): with both out of the way,
    # the Poisson test itself finds 6 against 4.2/h unremarkable.
    unguarded = replace(THRESHOLDS, jump_min_count=1, jump_factor=1.0)
    assert detect_jump(counter, hour_start + 3600, unguarded) == []


def test_jump_needs_enough_history() -> None:
    counter = TrafficCounter()
    hour_start = steady_baseline(counter, per_day=100, days=1) - 3 * 3600  # under 24 h of history
    for i in range(40):
        counter.add(request(hour_start + i * 60))
    assert detect_jump(counter, hour_start + 3600, THRESHOLDS) == []


def test_jump_factor_keeps_a_busy_endpoints_certain_but_small_rise_quiet() -> None:
    """Regression: ``pings.jump_factor`` was configured but read by no code."""
    counter = TrafficCounter()
    hour_start = steady_baseline(counter, per_day=1200, days=7)  # λ = 50 requests an hour
    for i in range(120):  # 2.4 × λ
        counter.add(request(hour_start + i * 30, source="app"))
    now = hour_start + 3600
    # Both other tests pass: far beyond chance, and well over the minimum count...
    assert poisson_tail(120, 50.0) < THRESHOLDS.jump_p_value
    assert THRESHOLDS.jump_min_count <= 120
    # ...but 120 is under the configured jump_factor (4) × 50: not a jump.
    assert THRESHOLDS.jump_factor * 50 > 120
    assert detect_jump(counter, now, THRESHOLDS) == []
    # With a factor the hour does reach, it is one.
    findings = detect_jump(counter, now, replace(THRESHOLDS, jump_factor=2.0))
    assert [(f.kind, f.source) for f in findings] == [("jump", "app")]
    assert "120 requests in the last hour against a usual 50.0 per hour" in findings[0].detail


@pytest.mark.parametrize(("k", "expected"), [(9, []), (10, ["jump"])])
def test_jump_min_count_is_per_hour(k: int, expected: list[str]) -> None:
    """``pings.jump_min_count`` (10) counts the hour's requests: here one every 6 min, never more than one
    a minute. Against a quiet 10 a day (λ ≈ 0.42/h) both 9 and 10 pass the Poisson test and the factor;
    only the count guard tells them apart."""
    counter = TrafficCounter()
    hour_start = steady_baseline(counter, per_day=10, days=7)
    for i in range(k):
        counter.add(request(hour_start + i * 360))
    assert [f.kind for f in detect_jump(counter, hour_start + 3600, THRESHOLDS)] == expected
    assert [
        f.kind for f in detect_jump(counter, hour_start + 3600, replace(THRESHOLDS, jump_min_count=k))
    ] == ["jump"]


# ---------------------------------------------------------------------------------------------- deny list


def test_deny_list_is_written_atomically_sorted_and_idempotently(tmp_path: Path) -> None:
    deny = DenyList(tmp_path / "gateway" / "deny.txt")
    assert deny.write(["203.0.113.9", "bot.example", "203.0.113.9"]) is True
    text = deny.path.read_text()
    assert text == DENY_LIST_HEADER + "203.0.113.9\nbot.example\n"
    assert oct(os.stat(deny.path).st_mode & 0o777) == "0o640"  # owner and group (the gateway's) only
    inode_before = os.stat(deny.path).st_ino
    assert deny.write(["bot.example", "203.0.113.9"]) is False
    assert os.stat(deny.path).st_ino == inode_before  # untouched
    assert sorted(p.name for p in deny.path.parent.iterdir()) == ["deny.txt"]  # no temp files left


def test_deny_list_add_keeps_manual_entries(tmp_path: Path) -> None:
    path = tmp_path / "deny.txt"
    path.write_text("# added by hand\n192.0.2.1\n")
    deny = DenyList(path)
    assert deny.add(["bot.example"]) is True
    assert deny.read() == {"192.0.2.1", "bot.example"}
    assert deny.add(["bot.example"]) is False


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "  ",
        "# comment",
        "a\nb",
        "(unknown)",
        "0.0.0.0/0",
        "10.0.0.0/8",
        "::/0",
        "*",
        "a\u2028*",
        "x" * 129,
    ],
)
def test_deny_list_rejects_entries_that_would_corrupt_the_file(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError):
        DenyList(tmp_path / "deny.txt").write([bad])


@pytest.mark.parametrize(
    ("source", "entry"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("203.0.113.0/24", "203.0.113.0/24"),
        ("203.0.113.7/24", "203.0.113.0/24"),
        ("2001:db8:1::/48", "2001:db8:1::/48"),
        ("keepwarm-bot", "keepwarm-bot"),
        ("client:42", "client:42"),
    ],
)
def test_deny_entries_are_checked_addresses_networks_or_client_ids(source: str, entry: str) -> None:
    assert deny_entry(source) == entry


def test_the_deny_list_reads_back_exactly_what_is_written(tmp_path: Path) -> None:
    """A source with U+2028 used to be read back as two entries (str.splitlines splits on it), so the
    daemon wrote a bare "*" line itself and re-applied it until the cap was gone."""
    path = tmp_path / "deny.txt"
    path.write_text("# by hand\n192.0.2.1\nbot\u2028*\n", encoding="utf-8")
    deny = DenyList(path)
    assert deny.read() == {"192.0.2.1", "bot\u2028*"}
    assert deny.add(["bot.example"]) is True
    assert deny.read() == {"192.0.2.1", "bot\u2028*", "bot.example"}  # a hand-written line is kept as is
    assert "\n*\n" not in path.read_text(encoding="utf-8")


def test_never_cut_protects_exact_sources_and_addresses_inside_networks() -> None:
    protected = ("partner-app", "198.51.100.0/24")
    assert is_protected("partner-app", protected)
    assert is_protected("198.51.100.77", protected)
    assert not is_protected("198.51.101.1", protected)
    assert not is_protected("partner-app2", protected)


def test_the_per_minute_series_matches_the_window_queries() -> None:
    counter = TrafficCounter()
    for n in range(90):
        counter.add(request(T0 + n * 37.0, source=f"s{n % 3}"))
        if n % 4 == 0:
            counter.add(ping(T0 + n * 41.0))
    counter.add_health_delta("ep1", T0 + 600.0, requests=25)
    first = int(T0 - T0 % 60)
    series = counter.per_minute("ep1", first, 70)
    expected = tuple(
        counter.endpoint_requests("ep1", m, m + 60) + counter.endpoint_pings("ep1", m, m + 60)
        for m in range(first, first + 70 * 60, 60)
    )
    assert series == expected and sum(series) > 0


def test_a_run_of_requests_is_three_numbers_split_at_the_endpoints_idle_timeout() -> None:
    """The keep-warm detector needs only the newest run's first and last time and its size: memory stays
    flat whatever the backlog (a 1,000,000-line backlog used to keep every arrival time)."""
    counter = TrafficCounter()
    counter.set_idle_timeouts({"ep1": 5})
    for i in range(100_000):
        counter.add(request(T0 + i * 3))
    assert counter.warm_run("ep1", "10.0.0.1") == (T0, T0 + 299_997, 100_000)
    counter.add(request(T0 + 299_997 + 5))  # a gap of exactly the idle timeout: the worker scaled down
    assert counter.warm_run("ep1", "10.0.0.1") == (T0 + 300_002, T0 + 300_002, 1)
    counter.add(request(T0 + 300_001))  # slightly out of order, still within the run
    assert counter.warm_run("ep1", "10.0.0.1") == (T0 + 300_001, T0 + 300_002, 2)


def test_a_flood_from_many_sources_is_folded_past_a_bound_per_minute() -> None:
    counter = TrafficCounter()
    for n in range(MAX_SOURCES_PER_MINUTE + 500):
        counter.add(request(T0 + 1, source=f"10.{n // 65536}.{n // 256 % 256}.{n % 256}"))
    by_source = counter.by_source("ep1", T0, T0 + 60)
    assert len(by_source) == MAX_SOURCES_PER_MINUTE + 1
    assert by_source[OTHER_SOURCES].requests == 500
    assert counter.folded_sources == 500
    assert counter.endpoint_requests("ep1", T0, T0 + 60) == MAX_SOURCES_PER_MINUTE + 500
