"""Every query the Firestore store issues has its composite index declared in firestore.indexes.json.

The emulator runs any query without an index; production Firestore refuses one whose composite
index is missing (FAILED_PRECONDITION), so a missing index would only show in production. The
store passes every query through ``FirebaseClient._record``: here a workload that reaches each
kind of query runs on the emulator, the index each recorded query needs is derived from the query
itself (its equality filters, then its order, with inequality fields ordered as Firestore orders
them implicitly), and firestore.indexes.json (the same file as the shipped copy) must declare it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from conftest import ROOT

from mirror_cli.clock import PinnedClock
from mirror_cli.core import Shard
from mirror_cli.models import Persona, Progress
from mirror_cli.stores.base import Caps
from mirror_cli.stores.firebase.client import FirebaseClient

Field = tuple[str, str]  # (field path, ASCENDING | DESCENDING)


Need = tuple[str, str, tuple[Field, ...]]  # (collection group, query scope, fields)


def required_index(query: Any) -> Need | None:
    """(collection group, scope, fields) of the index ``query`` needs that Firestore does not make
    by itself; None when its automatic single-field indexes serve it. Those exist for a
    collection's queries only: a collection-group query on one field needs that field's
    COLLECTION_GROUP index declared (a field override), on two or more a composite index."""
    from google.cloud.firestore_v1.types import StructuredQuery

    query = getattr(query, "_nested_query", query)  # count() wraps the query it counts
    pb = query._to_protobuf()
    op = StructuredQuery.FieldFilter.Operator
    equality_ops = {op.EQUAL, op.IN, op.ARRAY_CONTAINS, op.ARRAY_CONTAINS_ANY}
    equal: set[str] = set()
    ranged: set[str] = set()

    def walk(f: Any) -> None:
        if "composite_filter" in f:
            for sub in f.composite_filter.filters:
                walk(sub)
        elif "field_filter" in f:
            ff = f.field_filter
            (equal if ff.op in equality_ops else ranged).add(ff.field.field_path)
        elif "unary_filter" in f:
            equal.add(f.unary_filter.field.field_path)

    if "where" in pb:
        walk(pb.where)
    direction = {StructuredQuery.Direction.ASCENDING: "ASCENDING", StructuredQuery.Direction.DESCENDING: "DESCENDING"}
    orders: list[Field] = [
        (o.field.field_path, direction[o.direction]) for o in pb.order_by if o.field.field_path != "__name__"
    ]
    named = {f for f, _ in orders}
    orders += [(f, "ASCENDING") for f in sorted(ranged - named - {"__name__"})]  # Firestore's implicit order
    fields = [(f, "ASCENDING") for f in sorted(equal - {f for f, _ in orders})] + orders
    group = pb.from_[0]
    scope = "COLLECTION_GROUP" if group.all_descendants else "COLLECTION"
    if len(fields) > 1 or (fields and scope == "COLLECTION_GROUP"):
        return group.collection_id, scope, tuple(fields)
    return None


def declared(indexes: dict[str, Any], collection: str, scope: str, need: tuple[Field, ...]) -> bool:
    """A single field of a collection group: a field override giving the field that index in
    that scope. Otherwise an index of the collection (in the query's scope) whose leading fields
    are the query's equality fields (in any order) followed by exactly its ordered fields."""
    if len(need) == 1:
        (field, order), *_ = need
        return any(
            o["collectionGroup"] == collection
            and o["fieldPath"] == field
            and {"order": order, "queryScope": scope} in o.get("indexes", [])
            for o in indexes.get("fieldOverrides", [])
        )
    for idx in indexes["indexes"]:
        if idx["collectionGroup"] != collection or idx.get("queryScope", "COLLECTION") != scope:
            continue
        fields = tuple((f["fieldPath"], f.get("order", "ASCENDING")) for f in idx["fields"])
        if len(fields) != len(need):
            continue
        for split in range(len(need) + 1):
            if set(fields[:split]) == set(need[:split]) and fields[split:] == need[split:]:
                return True
    return False


def _workload(core: Any, clock: PinnedClock) -> None:
    """Reach every kind of query the store runs: the nightly tick (windowed and at any hour,
    whole and sharded), the due index check, ledger and usage reads, the cache, reviews, runs,
    reservations, avatars and reports."""
    zones = ["Asia/Tokyo", "Europe/Berlin", "America/St_Johns", None]
    core.import_users(
        [Persona(id=f"ix{i}", name="X", timezone=z, progress=Progress(active_days=8)) for i, z in enumerate(zones)]
    )
    for hour in range(0, 24, 3):
        clock.set(datetime(2026, 6, 1, hour, tzinfo=UTC))
        core.evolve(None, due=True, shard=Shard(hour % 2, 2))
        core.evolve(None, due=True)
    core.due_specs(Shard(0, 4))
    core.due_specs()
    core.overdue_users()
    store = core.store
    store.list_avatars("ix0")
    store.latest_avatar("ix0", "month", ("ok", "flagged"))  # the server's cached answer
    list(store.iter_events())
    list(store.iter_events(datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 6, 2, tzinfo=UTC), uid="ix0"))
    store.month_paid_usd("2026-06")
    store.month_paid_usd("2026-06", "ix0")
    store.cache_entries()
    store.cache_entries("ix0")
    store.list_reviews("fallback")
    store.list_reviews("avatar", "ix0/")
    store.list_runs(5)
    store.reserve("ix0", "k" * 64, 0.05, clock(), Caps(per_user_daily=3, system_daily=10, monthly_budget_usd=5.0))
    list(store.iter_user_ids())
    store.list_reports()
    store.list_reports(status="open")
    store.list_reports(uid="ix0")
    store.list_reports(status="open", uid="ix0")
    store.report_counts()
    store.report_counts(datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 7, 1, tzinfo=UTC))
    core.erase_user("ix1")  # every concern's deletion, the run-job rows by a collection-group query


@pytest.fixture
def indexes() -> dict[str, Any]:
    shipped = json.loads((ROOT / "mirror_cli" / "data" / "firebase" / "firestore.indexes.json").read_text())
    root = json.loads((ROOT / "firestore.indexes.json").read_text())
    assert shipped == root  # `mirror init` deploys the shipped copy
    return root


def test_every_query_of_the_firestore_store_has_its_composite_index(firebase_env, make_core, indexes):
    clock = PinnedClock(datetime(2026, 6, 1, tzinfo=UTC))
    core = make_core(examples=False, store="firebase", now=clock)
    FirebaseClient.query_log = []
    try:
        _workload(core, clock)
        log = FirebaseClient.query_log
    finally:
        FirebaseClient.query_log = None
    needs = {req for q in log if (req := required_index(q)) is not None}
    by_collection = {c for c, _, _ in needs}
    # the workload reached them
    assert {"users", "ledger", "avatar_cache", "reports", "avatars"} <= by_collection, needs
    # the nightly tick's query, windowed and sharded, is among them
    assert (
        "users",
        "COLLECTION",
        (
            ("latest_rank", "ASCENDING"),
            ("progress.active_days", "ASCENDING"),
            ("next_window", "ASCENDING"),
            ("shard", "ASCENDING"),
        ),
    ) in needs
    # erasure's one collection-group query: the run-job rows of a user across runs
    groups = {n for n in needs if n[1] == "COLLECTION_GROUP"}
    assert groups == {("jobs", "COLLECTION_GROUP", (("user_id", "ASCENDING"),))}
    missing = sorted(n for n in needs if not declared(indexes, *n))
    assert missing == [], f"declare these indexes in firestore.indexes.json: {missing}"


def test_the_declared_field_overrides_are_exactly_the_collection_group_queries(indexes):
    """A field override replaces the field's automatic indexes: it keeps the collection-scope
    ones (ascending, descending, array-contains) and adds exactly the collection-group index the
    erasure query needs, nothing broader."""
    assert indexes["fieldOverrides"] == [
        {
            "collectionGroup": "jobs",
            "fieldPath": "user_id",
            "indexes": [
                {"order": "ASCENDING", "queryScope": "COLLECTION"},
                {"order": "DESCENDING", "queryScope": "COLLECTION"},
                {"arrayConfig": "CONTAINS", "queryScope": "COLLECTION"},
                {"order": "ASCENDING", "queryScope": "COLLECTION_GROUP"},
            ],
        }
    ]


def test_a_missing_index_is_found(indexes):
    """The check can fail: without the windowed due index, the tick's query is reported."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud.firestore import Client, FieldFilter

    db = Client(project="index-check", credentials=AnonymousCredentials())  # builds queries, sends nothing
    query = (
        db.collection("users")
        .where(filter=FieldFilter("latest_rank", "==", 0))
        .where(filter=FieldFilter("progress.active_days", ">=", 7))
        .where(filter=FieldFilter("next_window", "<=", 1))
        .order_by("progress.active_days")
        .order_by("next_window")
    )
    need = required_index(query)
    assert need == (
        "users",
        "COLLECTION",
        (("latest_rank", "ASCENDING"), ("progress.active_days", "ASCENDING"), ("next_window", "ASCENDING")),
    )
    assert declared(indexes, *need)
    fewer = {"indexes": [i for i in indexes["indexes"] if [f["fieldPath"] for f in i["fields"]][-1] != "next_window"]}
    assert not declared(fewer, *need)
    # a collection-group query on one field needs its COLLECTION_GROUP field override
    run_jobs = db.collection_group("jobs").where(filter=FieldFilter("user_id", "==", "u"))
    need = required_index(run_jobs)
    assert need == ("jobs", "COLLECTION_GROUP", (("user_id", "ASCENDING"),))
    assert declared(indexes, *need)
    assert not declared({**indexes, "fieldOverrides": []}, *need)
    one_run = db.collection("runs").document("r").collection("jobs")
    assert required_index(one_run.where(filter=FieldFilter("user_id", "==", "u"))) is None
    # an equality-only or single-field query needs no composite index
    assert required_index(db.collection("users").where(filter=FieldFilter("latest_rank", "==", 0))) is None
    assert required_index(db.collection("runs").order_by("created_at")) is None
    # the implicit order of an inequality on a field that is not ordered explicitly
    ledger = (
        db.collection("ledger").where(filter=FieldFilter("seq", "<", "~")).where(filter=FieldFilter("uid", "==", "u"))
    )
    assert required_index(ledger) == ("ledger", "COLLECTION", (("uid", "ASCENDING"), ("seq", "ASCENDING")))


def test_the_apps_listing_of_shown_avatars_has_its_index(indexes):
    """The app lists its avatars with where('hidden_by', '==', null), newest first (the only
    listing firestore.rules answer): its composite index is declared for production."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud.firestore import Client, FieldFilter, Query

    db = Client(project="index-check", credentials=AnonymousCredentials())  # builds queries, sends nothing
    avatars = db.collection("users").document("u").collection("avatars")
    query = avatars.where(filter=FieldFilter("hidden_by", "==", None)).order_by(
        "created_at", direction=Query.DESCENDING
    )
    need = required_index(query)
    assert need == ("avatars", "COLLECTION", (("hidden_by", "ASCENDING"), ("created_at", "DESCENDING")))
    assert declared(indexes, *need)
