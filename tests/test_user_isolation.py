"""One bad record never stops the night, on both stores: a due user whose stored profile does not
validate (a client wrote achievement_areas: [1]) is skipped and named in the report, its JSON
summary, the run's job states (`runs show`) and the ledger; a user whose anchor image is missing
from the store fails alone (a 404 is not an outage); every other due user is served."""

from __future__ import annotations

import json
import sqlite3

import pytest

from mirror_cli.models import Persona, Progress

USERS = [f"u{i}" for i in range(6)]


def _poison_profile(core, store: str, uid: str) -> None:
    """Write what the model refuses straight into the store, as a misbehaving client would."""
    if store == "firebase":
        core.store.db.collection("users").document(uid).update({"progress.achievement_areas": [1]})
        return
    db = sqlite3.connect(core.settings.data_dir / "mirror.db")
    with db:
        (raw,) = db.execute("SELECT persona FROM users WHERE uid = ?", (uid,)).fetchone()
        persona = json.loads(raw)
        persona["progress"]["achievement_areas"] = [1]
        db.execute("UPDATE users SET persona = ? WHERE uid = ?", (json.dumps(persona), uid))
    db.close()


@pytest.mark.parametrize("store", ["local", "firebase"])
def test_one_poisoned_user_among_many_is_skipped_and_named(make_core, request, store):
    if store == "firebase":
        request.getfixturevalue("firebase_env")
    core = make_core(examples=False, store=store)
    core.import_users([Persona(id=uid, name="U", progress=Progress(active_days=1)) for uid in USERS])
    first = core.evolve(None, due=True, any_hour=True)
    assert first.count("generated") == len(USERS), [o.to_dict() for o in first.outcomes]

    for uid in USERS:  # everybody reached firstWeek
        core.store.set_progress(uid, Progress(active_days=8))
    _poison_profile(core, store, "u1")
    anchor = core.store.list_avatars("u2")[0]
    core.store.delete_image(anchor.image_path)  # its first avatar's image is gone

    report = core.evolve(None, due=True, any_hour=True)
    summary = report.summary()
    by_user = {o.user_id: o for o in report.outcomes}
    assert report.stopped is None and report.store_error is None
    assert set(by_user) == set(USERS)
    served = [uid for uid in USERS if by_user[uid].status == "generated"]
    assert served == ["u0", "u3", "u4", "u5"], {u: (o.status, o.reason) for u, o in by_user.items()}

    # the poisoned profile: skipped, named with the field, in every place an operator looks
    assert by_user["u1"].status == "skipped" and "achievement_areas.0" in (by_user["u1"].reason or "")
    assert [s["user"] for s in summary["skipped_users"]] == ["u1"]
    assert "achievement_areas" in summary["skipped_users"][0]["reason"]
    states = {s.user_id: s for s in core.store.job_states(report.run_id)}
    assert states["u1"].state == "skipped" and "achievement_areas" in (states["u1"].detail or "")
    skipped_lines = [e for e in core.store.events() if e.kind == "skipped"]
    assert [(e.user_id, e.run_id) for e in skipped_lines] == [("u1", report.run_id)]

    # the missing image: that user's job failed, named; not an outage
    assert by_user["u2"].status == "failed" and "missing" in (by_user["u2"].reason or "")
    assert report.tick is not None and report.tick["skipped"] == 1
