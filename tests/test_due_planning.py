"""O(due) nightly planning: the users who crossed a milestone are found by a few indexed queries
(one per stage, the shard as a bucket range), so a nightly run reads in proportion to the due
users, on both stores; the due index follows the avatars the tool writes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from conftest import avatar_record, make_config_dir

from mirror_cli.core import Shard
from mirror_cli.models import Persona, Progress

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["local", "firebase"])
def core(request, make_core, fast_configs):
    """A store with only this test's users (the example personas are not imported)."""
    flags = {"config_dir": fast_configs}
    if request.param == "firebase":
        request.getfixturevalue("firebase_env")
        flags["store"] = "firebase"
    return lambda: make_core(examples=False, **flags)


def _seed(core, n: int, due: set[int], fresh: set[int]) -> None:
    """n users with a newReflection avatar (3 active days), except: ``due`` ones reached
    firstWeek (8 days); ``fresh`` ones have no avatar yet."""
    store = core.store
    for i in range(n):
        uid = f"user{i:03d}"
        store.put_user(Persona(id=uid, name="U", progress=Progress(active_days=8 if i in due else 3)))
        if i in fresh:
            continue
        store.put_avatar(avatar_record(uid, f"a{i}", "newReflection", created_at=NOW))
        store.raise_latest_rank(uid, 0)


def _reads(core) -> int:
    return core.store.op_counts(datetime.now(UTC).strftime("%Y-%m-%d")).get("reads", 0)


def test_due_planning_reads_grow_with_due_users_only(core):
    c = core()
    _seed(c, 60, due={3, 17, 42}, fresh={50})
    before = _reads(c)
    specs = c.due_specs()
    used = _reads(c) - before
    planned = sorted((s.persona.id, s.target) for s in specs)
    assert planned == [
        ("user003", "firstWeek"),
        ("user017", "firstWeek"),
        ("user042", "firstWeek"),
        ("user050", "newReflection"),
    ]
    assert used <= 4 + 8, used  # one per due user (its profile) + one per empty stage query + the index version


def test_nobody_due_costs_a_constant_number_of_reads(core):
    c = core()
    _seed(c, 60, due=set(), fresh=set())
    before = _reads(c)
    report = c.evolve(None, due=True, dry_run=True, any_hour=True)
    assert report.outcomes == []
    assert _reads(c) - before <= 20


def test_shards_query_their_bucket_range_and_cover_every_due_user_once(core):
    c = core()
    due = set(range(0, 60, 3))
    _seed(c, 60, due=due, fresh=set())
    seen: list[str] = []
    for i in range(4):
        shard = Shard(i, 4)
        ids = [s.persona.id for s in c.due_specs(shard)]
        assert all(shard.owns(u) for u in ids)
        seen += ids
    assert sorted(seen) == sorted(f"user{i:03d}" for i in due)


def test_progress_written_by_the_app_and_avatars_written_by_the_tool_move_the_index(core):
    c = core()
    _seed(c, 5, due=set(), fresh=set())
    assert c.due_specs() == []
    c.store.set_progress("user001", Progress(active_days=35))  # what the app does: progress only
    assert [(s.persona.id, s.target) for s in c.due_specs()] == [("user001", "month")]
    c.store.raise_latest_rank("user001", 3)  # the tool wrote the month avatar
    c.store.raise_latest_rank("user001", 1)  # an older stage never lowers it
    assert c.due_specs() == []


def test_a_store_from_before_the_index_is_reindexed_once(make_core, fast_configs, data_dir):
    import sqlite3

    c = make_core(examples=False, config_dir=fast_configs)
    _seed(c, 4, due={1}, fresh={2})
    c.close()
    db = sqlite3.connect(data_dir / "mirror.db")  # as a store written before the due index
    db.execute("UPDATE users SET latest_rank = NULL")
    db.execute("DELETE FROM meta")
    db.commit()
    db.close()
    again = make_core(examples=False, config_dir=fast_configs)
    assert sorted(s.persona.id for s in again.due_specs()) == ["user001", "user002"]
    assert again.store.due_index_version() >= 1


def test_the_nightly_command_reads_only_what_it_plans(core, fast_configs):
    """`mirror evolve --due` end to end (the CLI sizes its progress from the plan, it does not
    list every user): nobody due, a handful of reads, counted by the store and flushed once."""
    from typer.testing import CliRunner

    from mirror_cli.cli.app import app

    c = core()
    _seed(c, 60, due=set(), fresh=set())
    before = _reads(c)
    c.close()
    args = [
        "evolve",
        "--due",
        "--any-hour",
        "--json",
        "--config-dir",
        str(fast_configs),
        "--data-dir",
        str(c.settings.data_dir),
    ]
    if c.settings.store == "firebase":
        args += ["--store", "firebase"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    after = _reads(core())
    assert after - before <= 20, after - before


def test_a_real_nightly_run_reads_at_most_three_firestore_documents_per_due_user(
    firebase_env, make_core, tmp_path, openai_env
):
    """A real `evolve --due` (the loopback OpenAI server: claims, reservations, the cache, the
    same-face anchor) reads <= 3 documents per due user, counted by the store itself, plus a
    constant: the due queries' empty pages, the run's own records and the month's usage counter
    shards the budget alerts read (at most 64)."""
    store = "firebase"  # the goal is Firestore's bill (the local store counts SQL statements)
    users, due_every = 40, 2
    roomy = make_config_dir(tmp_path, {"system_daily": 1000, "per_user_daily": 10, "monthly_budget_usd": 1000})
    flags = {"config_dir": roomy, "store": store, "provider": "openai", "base_url": openai_env.url}
    first = make_core(examples=False, **flags)
    people = [Persona(id=f"r{i:03d}", name="R") for i in range(users)]
    first.import_users(people)
    assert first.evolve(None, due=True, any_hour=True).count("generated") == users  # the anchors
    for p in people[::due_every]:
        first.store.set_progress(p.id, Progress(active_days=8))
    first.close()
    nightly = make_core(examples=False, **flags)
    before = _reads(nightly)
    report = nightly.evolve(None, due=True, any_hour=True)
    nightly.close()
    reads = _reads(make_core(examples=False, **flags)) - before
    due = users // due_every
    assert report.count("generated") == due, report.summary()
    print(f"\n[reads/{store}] due={due} reads={reads} per_due={reads / due:.2f}")
    assert reads <= 3 * due + 64 + 16, (reads, due)
