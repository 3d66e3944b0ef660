"""Nightly generation in each user's own night: an hourly tick (`evolve --due`) serves a due user
only while their local time is inside the nightly window (default 02:00-06:00), across
daylight-saving nights, missed ticks and zones with half-hour, 45-minute and +14/-11 offsets.

The window times are checked here with plain local wall-clock arithmetic (the tick's instant
in the user's zone), independently of mirror_cli.nightly."""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from conftest import CONFIGS
from typer.testing import CliRunner

from mirror_cli.cli.app import app
from mirror_cli.clock import PinnedClock
from mirror_cli.models import Persona, Progress
from mirror_cli.nightly import Window, parse_clock

ZONES = [
    "Europe/Berlin",
    "Europe/London",
    "Europe/Helsinki",
    "Asia/Kolkata",  # +05:30
    "Asia/Kathmandu",  # +05:45
    "Pacific/Chatham",  # +13:45 / +12:45
    "America/St_Johns",  # -02:30 / -03:30
    "Australia/Lord_Howe",  # +11 / +10:30: a half-hour DST shift
    "Pacific/Kiritimati",  # +14
    "Pacific/Pago_Pago",  # -11
    "America/Los_Angeles",
    "America/Sao_Paulo",
    "Asia/Tokyo",
    "Australia/Adelaide",  # +10:30 / +09:30
    "Africa/Nairobi",
    "Asia/Tehran",  # +03:30
    None,  # the configured default zone (UTC)
]
START, END = time(2, 0), time(6, 0)
SERVED = ("generated", "cached", "ingested")


@pytest.fixture
def small_configs(tmp_path: Path) -> Path:
    """The shipped configs with the offline renderer drawing 256x256 (the same jobs, faster)."""
    cfg = tmp_path / "configs"
    shutil.copytree(CONFIGS, cfg)
    models = yaml.safe_load((cfg / "models.yaml").read_text())
    models["models"]["local"]["sizes"].append("256x256")
    (cfg / "models.yaml").write_text(yaml.safe_dump(models))
    style = yaml.safe_load((cfg / "styles" / "daymi.yaml").read_text())
    style["gate"]["size"] = 256
    (cfg / "styles" / "daymi.yaml").write_text(yaml.safe_dump(style))
    return cfg


def _users() -> list[Persona]:
    out = []
    for i, name in enumerate(ZONES):
        tag = (name or "default").split("/")[-1].lower()
        out.append(Persona(id=f"u{i:02d}-{tag}", name=f"User {i}", timezone=name, progress=Progress(active_days=2)))
    return out


def _local_in_window(at: datetime, zone: str | None) -> bool:
    local = at.astimezone(ZoneInfo(zone or "UTC")).time()
    return START <= local < END


def _simulate(core, clock: PinnedClock, start: datetime, missed: set[int], bump_at: int):
    """48 hourly ticks from ``start``; at tick ``bump_at`` the app reports 8 active days for
    everyone (the firstWeek milestone). Returns the served jobs (uid, target, tick instant),
    when each user became due for each target, and every tick's summary."""
    users = {p.id: p for p in _users()}
    due_since: dict[tuple[str, str], datetime] = {(u, "newReflection"): start for u in users}
    served: list[tuple[str, str, datetime]] = []
    ticks: list[dict] = []
    for i in range(48):
        at = start + timedelta(hours=i)
        clock.set(at)
        if i == bump_at:
            for uid in users:
                core.set_progress(uid, Progress(active_days=8))
                due_since[(uid, "firstWeek")] = at
        if i in missed:
            continue
        report = core.evolve(None, due=True)
        assert report.summary()["failed"] == 0, report.summary()
        ticks.append(report.summary()["tick"])
        served += [(o.user_id, o.target, at) for o in report.outcomes if o.status in SERVED]
    return users, due_since, served, ticks


@pytest.mark.slow  # 48 ticks and 34 renders each (about 25 s on a loaded 2-core machine)
@pytest.mark.parametrize(
    ("start", "missed"),
    [
        # EU spring forward: 2026-03-29 01:00 UTC, Europe/Berlin's 02:00-03:00 does not exist
        (datetime(2026, 3, 28, 12, tzinfo=UTC), set()),
        # ... with two ticks missed: Berlin's first two ticks of its three-hour window that night
        (datetime(2026, 3, 28, 12, tzinfo=UTC), {13, 14}),
        # EU fall back: 2026-10-25 01:00 UTC, Berlin's 02:00-03:00 happens twice
        (datetime(2026, 10, 24, 12, tzinfo=UTC), set()),
        (datetime(2026, 10, 24, 12, tzinfo=UTC), {13, 14}),
    ],
    ids=["spring-forward", "spring-forward-2-missed", "fall-back", "fall-back-2-missed"],
)
def test_48_hourly_ticks_serve_everyone_once_inside_their_local_window(make_core, small_configs, start, missed):
    clock = PinnedClock(start)
    core = make_core(examples=False, config_dir=small_configs, size="256x256", now=clock)
    core.import_users(_users())
    users, due_since, served, ticks = _simulate(core, clock, start, missed, bump_at=24)

    zone_of = {uid: p.timezone for uid, p in users.items()}
    for uid, target, at in served:  # every job started inside its user's local window
        assert _local_in_window(at, zone_of[uid]), (uid, target, at.astimezone(ZoneInfo(zone_of[uid] or "UTC")))
    jobs = [(uid, target) for uid, target, _ in served]
    assert sorted(jobs) == sorted(set(jobs)), "someone was served twice for one milestone"
    assert sorted(jobs) == sorted(due_since), "a due user was never served"
    for uid, target, at in served:  # and within a day of becoming due
        assert at - due_since[(uid, target)] <= timedelta(hours=24), (uid, target, at)
    # the store agrees: one avatar per user and stage, one paid generation each
    generated = [(e.user_id, e.target) for e in core.store.events() if e.kind == "generated"]
    assert sorted(generated) == sorted(due_since)

    # the DST night itself: Berlin's first avatar was made in that night's window, which is
    # three hours long in spring (01:00-04:00 UTC) and five in autumn (00:00-05:00 UTC)
    night = date(2026, 3, 29) if start.month == 3 else date(2026, 10, 25)
    berlin = next(at for uid, target, at in served if zone_of[uid] == "Europe/Berlin" and target == "newReflection")
    lo = datetime.combine(night, time(1 if start.month == 3 else 0), tzinfo=UTC)
    hi = lo + timedelta(hours=3 if start.month == 3 else 5)
    assert lo <= berlin < hi
    if missed and start.month == 3:
        assert berlin == lo + timedelta(hours=2)  # the one tick left of its shortened window

    # the run summaries add up: what was served, tick by tick
    assert sum(t["served"] for t in ticks) == 2 * len(users)  # two milestones each, one tick each
    assert all(t["left"] == 0 for t in ticks)
    assert max(t["in_window"] for t in ticks) < len(users)  # the day's work is spread over the ticks


def test_a_window_missed_whole_is_served_the_next_night_never_at_a_random_hour(make_core, small_configs):
    at = datetime(2026, 6, 1, 12, tzinfo=UTC)  # Tokyo (+09:00): window 17:00-21:00 UTC
    clock = PinnedClock(at)
    core = make_core(examples=False, config_dir=small_configs, size="256x256", now=clock)
    core.import_users([Persona(id="kenji", name="Kenji", timezone="Asia/Tokyo")])
    assert core.overdue_users() == 0
    clock.set(datetime(2026, 6, 1, 23, tzinfo=UTC))  # no tick ran from 17:00 to 22:00: an outage
    assert core.overdue_users() == 1
    assert core.usage().overdue_users == 1
    nightly = next(c for c in core.doctor() if c["check"] == "nightly")
    assert nightly["status"] == "warn" and "1 user(s) overdue" in nightly["detail"]
    report = core.evolve(None, due=True)
    assert report.outcomes == []
    assert report.summary()["tick"] | {"at": None} == {
        "at": None,
        "window": "02:00-06:00",
        "any_hour": False,
        "due": 1,
        "in_window": 0,
        "served": 0,
        "left": 0,
        "rescheduled": 1,
    }
    assert core.overdue_users() == 0  # moved to the next night's window
    for hour in range(0, 17):  # the next day's ticks before Tokyo's night: nothing, no reads of kenji
        clock.set(datetime(2026, 6, 2, hour, tzinfo=UTC))
        assert core.evolve(None, due=True).summary()["tick"]["due"] == 0
    clock.set(datetime(2026, 6, 2, 17, tzinfo=UTC))  # 02:00 in Tokyo
    report = core.evolve(None, due=True)
    assert [(o.user_id, o.target, o.status) for o in report.outcomes] == [("kenji", "newReflection", "generated")]
    assert report.summary()["tick"]["served"] == 1


def test_any_hour_serves_every_due_user_now_and_dry_runs_change_nothing(make_core, small_configs):
    at = datetime(2026, 6, 1, 12, tzinfo=UTC)  # noon UTC: nobody below is in their night
    clock = PinnedClock(at)
    core = make_core(examples=False, config_dir=small_configs, size="256x256", now=clock)
    core.import_users(
        [Persona(id="a", name="A", timezone="Asia/Tokyo"), Persona(id="b", name="B", timezone="America/New_York")]
    )
    plan = core.evolve(None, due=True, dry_run=True)
    assert plan.outcomes == [] and plan.summary()["tick"]["due"] == 0  # their windows open tonight
    plan = core.evolve(None, due=True, any_hour=True, dry_run=True)
    assert sorted(o.user_id for o in plan.outcomes if o.status == "planned") == ["a", "b"]
    report = core.evolve(None, due=True, any_hour=True)
    assert sorted(o.user_id for o in report.outcomes if o.status == "generated") == ["a", "b"]
    tick = report.summary()["tick"]
    assert (tick["any_hour"], tick["due"], tick["in_window"], tick["served"], tick["left"]) == (True, 2, 2, 2, 0)
    assert core.evolve(None, due=True, any_hour=True).outcomes == []  # served once


def test_a_changed_zone_moves_the_window_at_once(make_core, small_configs):
    clock = PinnedClock(datetime(2026, 6, 1, 12, tzinfo=UTC))
    core = make_core(examples=False, config_dir=small_configs, size="256x256", now=clock)
    core.import_users([Persona(id="ana", name="Ana", timezone="America/Sao_Paulo")])  # 05:00-09:00 UTC
    clock.set(datetime(2026, 6, 1, 17, tzinfo=UTC))  # 02:00 in Tokyo, 14:00 in Sao Paulo
    assert core.evolve(None, due=True).outcomes == []
    core.set_timezone("ana", "Asia/Tokyo")
    report = core.evolve(None, due=True)
    assert [o.user_id for o in report.outcomes if o.status == "generated"] == ["ana"]
    with pytest.raises(Exception, match="Mars/Olympus"):
        core.set_timezone("ana", "Mars/Olympus")


@pytest.mark.parametrize(
    ("zone", "night", "hours"),
    [
        ("Europe/Berlin", date(2026, 3, 29), 3.0),  # spring forward: 02:00 is 03:00
        ("Europe/Berlin", date(2026, 10, 25), 5.0),  # fall back: 02:00-03:00 twice
        ("Australia/Lord_Howe", date(2026, 10, 4), 3.5),  # 02:00 -> 02:30
        ("Australia/Lord_Howe", date(2026, 4, 5), 4.0),  # 02:00 -> 01:30: the repeat is before 02:00
        ("America/St_Johns", date(2026, 3, 8), 3.0),
        ("Pacific/Chatham", date(2026, 4, 5), 5.0),  # 03:45 -> 02:45
        ("Asia/Kathmandu", date(2026, 3, 29), 4.0),
        ("Pacific/Kiritimati", date(2026, 3, 29), 4.0),
    ],
)
def test_window_lengths_on_clock_change_nights(zone, night, hours):
    w = Window(parse_clock("02:00", "start"), parse_clock("06:00", "end"))
    start, end = w.on(night, ZoneInfo(zone))
    assert (end - start) == timedelta(hours=hours)
    assert start.astimezone(ZoneInfo(zone)).date() == night
    assert end.astimezone(ZoneInfo(zone)).time() == time(6, 0)
    # every hourly tick inside it is a local time inside 02:00-06:00, and there is at least one
    tick = start.replace(minute=0, second=0) + (timedelta(hours=1) if start.minute else timedelta())
    inside = []
    while tick < end:
        inside.append(tick)
        tick += timedelta(hours=1)
    assert inside and all(_local_in_window(t, zone) for t in inside)


def test_zones_are_validated_everywhere_with_exit_2_naming_field_and_value(tmp_path, data_dir):
    runner = CliRunner()
    person = tmp_path / "p.yaml"
    person.write_text("id: p1\nname: P\ntimezone: Mars/Olympus\n")
    r = runner.invoke(app, ["users", "import", str(person), "--json", "--data-dir", str(data_dir)])
    assert r.exit_code == 2, r.output
    err = json.loads(r.stdout)
    assert "timezone" in err["message"] and "Mars/Olympus" in err["message"]
    person.write_text("id: p1\nname: P\ntimezone: Asia/Kathmandu\n")
    assert runner.invoke(app, ["users", "import", str(person), "--data-dir", str(data_dir)]).exit_code == 0
    r = runner.invoke(app, ["users", "set-timezone", "--user", "p1", "--tz", "Asia/Tokio", "--data-dir", str(data_dir)])
    assert r.exit_code == 2 and "--tz" in r.output and "Asia/Tokio" in r.output
    r = runner.invoke(
        app,
        ["users", "set-timezone", "--user", "p1", "--tz", "Asia/Tokyo", "--json", "--data-dir", str(data_dir)],
        env={"MIRROR_NOW": "2026-06-01T12:00:00Z"},
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)["summary"]
    assert out["timezone"] == "Asia/Tokyo" and out["next_window_opens"] == "2026-06-01T17:00:00+00:00"
    r = runner.invoke(app, ["users", "list", "--json", "--data-dir", str(data_dir)])
    assert json.loads(r.stdout)["items"][0]["timezone"] == "Asia/Tokyo"
    args = ["users", "set-timezone", "--user", "p1", "--default", "--json", "--data-dir", str(data_dir)]
    r = runner.invoke(app, args)
    assert r.exit_code == 0 and json.loads(r.stdout)["summary"]["zone_used"] == "UTC"
    r = runner.invoke(app, ["users", "set-timezone", "--user", "p1", "--data-dir", str(data_dir)])
    assert r.exit_code == 2 and "--tz" in r.output  # neither --tz nor --default
    r = runner.invoke(app, ["users", "set-timezone", "--user", "nobody", "--tz", "UTC", "--data-dir", str(data_dir)])
    assert r.exit_code == 4  # an unknown user
    bad_default = tmp_path / "cfg"
    shutil.copytree(CONFIGS, bad_default)
    limits = yaml.safe_load((bad_default / "limits.yaml").read_text())
    for nightly, expected in (
        ({"timezone": "Europe/Berln"}, "nightly.timezone"),  # the configured default zone
        ({"window_start": "02:00", "window_end": "03:00"}, "shorter than 2 hours"),
        ({"window_start": "02:00", "window_end": "23:00"}, "longer than 20 hours"),
        ({"window_start": "2am"}, "'2am' is not a time of day"),
    ):
        limits["nightly"] = nightly
        (bad_default / "limits.yaml").write_text(yaml.safe_dump(limits))
        args = ["evolve", "--due", "--json", "--config-dir", str(bad_default), "--data-dir", str(data_dir)]
        r = runner.invoke(app, args)
        assert r.exit_code == 3 and expected in json.loads(r.stdout)["message"], r.output


def test_cli_tick_with_now_prints_the_window_figures(data_dir, tmp_path, small_configs):
    runner = CliRunner()
    person = tmp_path / "p.yaml"
    person.write_text("id: p1\nname: P\ntimezone: Asia/Kolkata\n")  # 02:00-06:00 IST = 20:30-00:30 UTC
    store = ["--data-dir", str(data_dir), "--config-dir", str(small_configs)]
    flags = [*store, "--size", "256x256"]
    env = {"MIRROR_NOW": "2026-06-01T12:00:00Z"}
    assert runner.invoke(app, ["users", "import", str(person), *store], env=env).exit_code == 0
    r = runner.invoke(app, ["evolve", "--due", "--json", "--now", "2026-06-01T19:00:00Z", *flags], env=env)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["summary"]["tick"]["due"] == 0  # 00:30 IST: window not open yet
    r = runner.invoke(app, ["evolve", "--due", "--json", "--now", "2026-06-01T21:00:00Z", *flags], env=env)
    tick = json.loads(r.stdout)["summary"]["tick"]
    assert (tick["at"][:19], tick["in_window"], tick["served"]) == ("2026-06-01T21:00:00", 1, 1)  # --now moves on
    r = runner.invoke(app, ["evolve", "--due", "--now", "2026-06-01T22:00:00Z", *flags], env=env)
    assert r.exit_code == 0 and "0 served" in r.output.replace("\n", " ")
    r = runner.invoke(app, ["evolve", "--user", "p1", "--any-hour", *flags], env=env)
    assert r.exit_code == 2


def test_the_local_store_keeps_the_window_in_an_indexed_column(make_core, small_configs, data_dir):
    import sqlite3

    make_core(examples=False, config_dir=small_configs).import_users([Persona(id="x", name="X")])
    db = sqlite3.connect(data_dir / "mirror.db")
    plan = " ".join(
        str(r)
        for r in db.execute(
            "EXPLAIN QUERY PLAN SELECT uid FROM users WHERE latest_rank = -1 AND active_days >= 0 "
            "AND next_window <= 99 AND shard >= 0 AND shard < 4096"
        )
    )
    assert "users_window" in plan or "users_due" in plan
    assert db.execute("SELECT next_window FROM users").fetchone()[0] > 0
    tally: dict[str, int] = defaultdict(int)
    for (v,) in db.execute("SELECT value FROM meta WHERE key = 'due_index'"):
        tally[v] += 1
    assert tally == {"2": 1}


def test_the_firestore_tick_reads_only_the_due_users_whose_window_is_open(firebase_env, make_core, small_configs):
    """The query path on the Firestore emulator: 24 hourly ticks over users in six zones, each
    user served once inside their window, and a tick with nobody in window reads a constant."""
    zones = ["Asia/Kathmandu", "Pacific/Chatham", "America/St_Johns", "Pacific/Pago_Pago", "Europe/Berlin", None]
    start = datetime(2026, 3, 28, 12, tzinfo=UTC)
    clock = PinnedClock(start)
    core = make_core(examples=False, store="firebase", config_dir=small_configs, size="256x256", now=clock)
    core.import_users(
        [Persona(id=f"f{i}", name="F", timezone=z, progress=Progress(active_days=2)) for i, z in enumerate(zones)]
    )
    for i in range(8):  # not due: they never cost a read, whatever their window
        core.store.put_user(Persona(id=f"idle{i}", name="I", timezone=zones[i % len(zones)]))
        core.store.raise_latest_rank(f"idle{i}", 0)
    served: list[tuple[str, datetime]] = []
    reads: list[tuple[int, int]] = []
    for h in range(24):
        at = start + timedelta(hours=h)
        clock.set(at)
        before = core.store.op_counts(datetime.now(UTC).strftime("%Y-%m-%d")).get("reads", 0)
        plan = core.plan_tick()
        used = core.store.op_counts(datetime.now(UTC).strftime("%Y-%m-%d")).get("reads", 0) - before
        reads.append((plan.in_window, used))
        report = core.evolve(None, due=True)
        served += [(o.user_id, at) for o in report.outcomes if o.status in SERVED]
    assert sorted(u for u, _ in served) == [f"f{i}" for i in range(len(zones))]
    zone_of = {f"f{i}": z for i, z in enumerate(zones)}
    assert all(_local_in_window(at, zone_of[u]) for u, at in served)
    quiet = [used for in_window, used in reads if in_window == 0]
    assert quiet and max(quiet) <= 20, reads  # one read per empty stage query, plus the index version
    # a zone the app wrote that the zone database does not know: that user is served in the
    # default zone's window, and nobody else's tick breaks
    core.store.db.collection("users").document("f0").update({"timezone": "Mars/Olympus"})
    assert core.store.get_user("f0").timezone is None


def test_a_user_handed_to_a_batch_is_done_for_the_night(make_core, openai_env, fast_configs):
    """Through the Batch API a tick submits the in-window users' jobs; the next ticks of the same
    night neither plan them again (their claims would refuse it) nor count them as left."""
    clock = PinnedClock(datetime(2026, 6, 1, 12, tzinfo=UTC))
    core = make_core(
        examples=False, provider="openai-batch", base_url=openai_env.url, config_dir=fast_configs, now=clock
    )
    core.import_users([Persona(id="mei", name="Mei", timezone="Asia/Shanghai")])  # 18:00-22:00 UTC
    clock.set(datetime(2026, 6, 1, 18, tzinfo=UTC))
    first = core.evolve(None, due=True)
    assert [(o.user_id, o.status) for o in first.outcomes] == [("mei", "planned")]
    assert first.summary()["tick"]["served"] == 1 and first.summary()["tick"]["left"] == 0
    clock.set(datetime(2026, 6, 1, 19, tzinfo=UTC))
    second = core.evolve(None, due=True)
    assert second.outcomes == [] and second.summary()["tick"]["due"] == 0
    assert len(openai_env.batches) == 1


def test_a_window_across_midnight_and_the_next_opening():
    w = Window(parse_clock("23:00", "start"), parse_clock("03:00", "end"))
    tz = ZoneInfo("America/New_York")  # -04:00 in June
    start, end = w.on(date(2026, 6, 1), tz)
    assert (start, end) == (datetime(2026, 6, 2, 3, tzinfo=UTC), datetime(2026, 6, 2, 7, tzinfo=UTC))
    assert w.contains(datetime(2026, 6, 2, 6, 59, tzinfo=UTC), tz)
    assert not w.contains(datetime(2026, 6, 2, 7, tzinfo=UTC), tz)  # the end is not in it
    assert w.next_open(datetime(2026, 6, 2, 5, tzinfo=UTC), tz) == start  # inside: the current one
    assert w.next_open(datetime(2026, 6, 2, 8, tzinfo=UTC), tz) == datetime(2026, 6, 3, 3, tzinfo=UTC)
    assert w.after_served(datetime(2026, 6, 2, 5, tzinfo=UTC), tz) == datetime(2026, 6, 3, 3, tzinfo=UTC)


def test_users_published_to_the_job_queue_are_not_published_again_the_same_night(make_core, small_configs):
    clock = PinnedClock(datetime(2026, 6, 1, 12, tzinfo=UTC))
    core = make_core(examples=False, config_dir=small_configs, size="256x256", now=clock)
    core.import_users([Persona(id="yui", name="Yui", timezone="Asia/Tokyo")])  # 17:00-21:00 UTC
    assert core.enqueue_due() == 0  # noon UTC: not Tokyo's night
    clock.set(datetime(2026, 6, 1, 17, tzinfo=UTC))
    assert core.enqueue_due() == 1
    clock.set(datetime(2026, 6, 1, 18, tzinfo=UTC))
    assert core.enqueue_due() == 0  # handed off: the queue redelivers, the tick does not republish
    assert core.enqueue_due(any_hour=True) == 1  # a manual catch-up still can
