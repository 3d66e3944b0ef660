"""Sharding: a stable partition of users, from --shard or the platform's task index."""

from __future__ import annotations

import pytest

from mirror_cli.core import Shard
from mirror_cli.errors import UsageError
from mirror_cli.models import Persona


def test_shards_partition_users_stably(make_core):
    core = make_core()
    core.import_users([Persona(id=f"user{i:03d}", name="U") for i in range(200)])
    everyone = set(core.user_ids())
    parts = [set(core.user_ids(Shard(i, 4))) for i in range(4)]
    assert set().union(*parts) == everyone and sum(len(p) for p in parts) == len(everyone)
    assert all(30 < len(p) < 75 for p in parts)  # roughly even
    assert parts[2] == set(make_core().user_ids(Shard(2, 4)))  # same answer in another process


@pytest.mark.parametrize(
    "env,expected",
    [
        ({"CLOUD_RUN_TASK_INDEX": "3", "CLOUD_RUN_TASK_COUNT": "8"}, Shard(3, 8)),
        ({"JOB_COMPLETION_INDEX": "1", "MIRROR_SHARD_COUNT": "5"}, Shard(1, 5)),
        ({}, None),
    ],
)
def test_shard_from_platform_variables(monkeypatch, env, expected):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert Shard.parse(None) == expected


def test_explicit_shard_wins_and_bad_shards_are_clear(monkeypatch):
    monkeypatch.setenv("CLOUD_RUN_TASK_INDEX", "3")
    monkeypatch.setenv("CLOUD_RUN_TASK_COUNT", "8")
    assert Shard.parse("0/2") == Shard(0, 2)
    for bad in ("2/2", "x/3", "1-3", "-1/4"):
        with pytest.raises(UsageError):
            Shard.parse(bad)


def test_sharded_evolve_covers_each_user_once(make_core):
    core = make_core()
    made = []
    for i in range(3):
        made += [
            o.user_id
            for o in core.evolve(None, due=True, shard=Shard(i, 3), any_hour=True).outcomes
            if o.status == "generated" and o.target == "newReflection"
        ]
    assert sorted(made) == sorted(core.user_ids())
