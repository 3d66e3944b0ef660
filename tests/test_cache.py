"""The cache: exact repeats are free, per user only, with a TTL; purge never removes what users see."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mirror_cli.models import Persona


class Clock:
    def __init__(self):
        self.t = datetime(2026, 11, 1, tzinfo=UTC)

    def __call__(self):
        return self.t


def test_cache_never_crosses_users(make_core):
    core = make_core()
    twin = core.persona("demo").model_copy(update={"id": "demo-twin"})
    core.import_users([twin])
    a = core.generate(["demo"], "month").outcomes[0]
    b = core.generate(["demo-twin"], "month").outcomes[0]
    assert b.status == "generated" and b.record.id != a.record.id and b.request_key != a.request_key
    assert core.store.cache_get("demo-twin", a.request_key) is None


def test_ttl_expiry_keeps_the_stage_and_regenerate_is_explicit(make_core):
    """An expired cache entry never re-buys a stage the user has (a milestone is paid once);
    a new image of it is an explicit regenerate."""
    clock = Clock()
    core = make_core(now=clock)
    first = core.generate(["demo"], "month").outcomes[0]
    clock.t += timedelta(days=29)
    assert core.generate(["demo"], "month").outcomes[0].status == "cached"
    clock.t += timedelta(days=2)
    kept = core.generate(["demo"], "month").outcomes[0]
    assert kept.status == "cached" and kept.record.id == first.record.id
    again = core.generate(["demo"], "month", regenerate=True).outcomes[0]
    assert again.status == "generated" and again.record.id != first.record.id


def test_purge_keeps_timeline_avatars_and_fallbacks(make_core, tmp_path):
    clock = Clock()
    core = make_core(now=clock, fallback_dir=tmp_path / "fb")
    core.seed_fallbacks(only=["month"], variants=["dark-fro"])
    fallback = tmp_path / "fb" / "daymi" / "month" / "dark-fro.webp"
    old = core.generate(["kenji"], "month").outcomes[0].record
    clock.t += timedelta(days=40)
    # a new appearance makes a new month avatar; the old one is no longer in the timeline
    kenji = core.persona("kenji")
    core.import_users(
        [kenji.model_copy(update={"appearance": kenji.appearance.model_copy(update={"glasses": "none"})})]
    )
    new = core.generate(["kenji"], "month").outcomes[0].record
    assert [r.id for r in core.timeline("kenji")] == [new.id]

    dry = core.purge_cache(older_than="30d", dry_run=True)
    assert dry.entries_removed == 1 and dry.images_removed == 2 and dry.bytes_freed > 0
    assert core.store.get_avatar("kenji", old.id) is not None  # dry run changed nothing

    report = core.purge_cache(older_than="30d")
    assert report.images_removed == 2
    assert core.store.get_avatar("kenji", old.id) is None
    assert not (core.settings.data_dir / old.image_path).exists()
    assert (core.settings.data_dir / new.image_path).exists() and fallback.exists()

    everything = core.purge_cache(everything=True)
    assert everything.entries_removed == 1 and everything.kept_in_timeline == 1 and everything.images_removed == 0
    assert (core.settings.data_dir / new.image_path).exists()


def test_purge_one_user_only(make_core):
    core = make_core()
    core.generate(["demo", "maya"], "month")
    report = core.purge_cache(user="demo", everything=True)
    assert report.examined == 1
    assert core.store.cache_entries("maya")


def test_bad_age_is_a_clear_error(make_core):
    import pytest

    from mirror_cli.errors import UsageError

    with pytest.raises(UsageError) as err:
        make_core().purge_cache(older_than="thirty days")
    assert "30d" in err.value.hint


def test_unknown_user_import_roundtrip(make_core):
    core = make_core()
    core.import_users([Persona(id="new-user", name="New Person")])
    assert "new-user" in list(core.user_ids())
