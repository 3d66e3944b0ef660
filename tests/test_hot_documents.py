"""No hot documents: a 300-job nightly run split over 8 concurrent shard processes, every
Firestore write logged per document, and no document written more than once per second on
average at the fastest rate the run could go (Firestore's sustained limit per document), counted
from the writes themselves rather than timed on a loaded machine."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from conftest import make_config_dir

from mirror_cli.models import Persona

HERE = Path(__file__).resolve().parent
USERS = 300
SHARDS = 8
MAX_JOBS_PER_S = 16  # 8 shards x 2 requests in flight, each image taking about a second


def shard_args(i: int) -> list[str]:
    return ["--shard", f"{i}/{SHARDS}", "--concurrency", "2"]


@pytest.mark.slow
def test_eight_shards_write_no_document_more_than_once_a_second(
    firebase_env, emulators, make_core, openai_env, tmp_path
):
    # a request timeout far above any answer's time: a timed-out request is retried and may be
    # billed twice, which this test (one image per user) is not about
    retry = {"max_attempts": 4, "base_delay_s": 0.01, "max_delay_s": 0.05, "request_timeout_s": 120}
    limits = {"system_daily": 10_000, "per_user_daily": 100, "monthly_budget_usd": 1000, "retry": retry}
    cfg = make_config_dir(tmp_path, limits)
    core = make_core(examples=False, store="firebase", config_dir=cfg)  # only this test's users
    core.import_users([Persona(id=f"h{i:03d}", name="H") for i in range(USERS)])
    core.close()
    log = tmp_path / "writes.log"
    env = {
        **os.environ,
        "OPENAI_API_KEY": "sk-test-abcdefghijklmnop",
        "MIRROR_STORE": "firebase",
        "MIRROR_DATA_DIR": str(tmp_path / "data"),
        "MIRROR_CONFIG_DIR": str(cfg),
        "MIRROR_PROVIDER": "openai",
        "MIRROR_BASE_URL": openai_env.url,
    }
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(HERE / "firestore_write_log.py"),
                str(log),
                "evolve",
                "--due",
                "--any-hour",
                "--json",
                *shard_args(i),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(SHARDS)
    ]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-2000:]
    assert len(openai_env.ledger) == USERS  # every due user was generated once
    lines = [line.split(" ", 1) for line in log.read_text().splitlines()]
    per_doc = Counter(path for _, path in lines)
    hottest, writes = per_doc.most_common(1)[0]
    print(f"{len(lines)} writes to {len(per_doc)} documents; the hottest {hottest}: {writes}; {per_doc.most_common(6)}")
    # Counted, not timed: at MAX_JOBS_PER_S (above any image API's sustained rate today) a
    # document written at most once per MAX_JOBS_PER_S jobs sees at most one write a second.
    assert writes <= USERS / MAX_JOBS_PER_S, (hottest, writes)
    # the counters really are spread: many shards of the day's usage were written
    assert sum(1 for d in per_doc if d.startswith("usage_daily/")) >= 16
