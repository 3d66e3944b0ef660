"""/metrics: scraped from the real server after real requests, parsed with prometheus-client's
own parser. Request counts and latency by route template and status, jobs by outcome, spend,
budget headroom, queue depth, provider latency; never a user id in a label."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from serve_support import auth_env, bearer, live, new_user, serve_settings

API = "/api/v1"
BUDGET = 40.0


def scrape(server, headers=None) -> dict[str, list]:
    r = httpx.get(server.url + "/metrics", headers=headers or {}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    families: dict[str, list] = {}
    for family in text_string_to_metric_families(r.text):
        families.setdefault(family.name, []).extend(family.samples)
    return families


def value(families, sample_name, **labels) -> float:
    family = sample_name.removesuffix("_total").removesuffix("_count").removesuffix("_sum")
    found = [s.value for s in families.get(family, []) if s.name == sample_name and s.labels == labels]
    assert len(found) == 1, (sample_name, labels, families.get(family))
    return found[0]


def test_metrics_after_real_requests(serve_settings, live, auth_env):
    # a month of its own: the serve tests share one Firestore project, and the month's spend is the store's
    server = live(serve_settings(limits={"monthly_budget_usd": BUDGET}, now="2027-01-10T12:00:00Z"))
    store = server.service.core.store
    uid, token = new_user(auth_env, store)
    body = {"user_id": uid, "evolution_stage": "month"}
    with httpx.Client(base_url=server.url + API, timeout=60) as c:
        first = c.post("/avatar/generate", json=body, headers=bearer(token))
        assert first.status_code == 200, first.text
        assert c.post("/avatar/generate", json=body, headers=bearer(token)).json()["cached"] is True
        assert c.get(f"/avatar/user/{uid}", headers=bearer(token)).status_code == 200
        assert c.get(f"/nowhere/{uid}").status_code == 404
        assert c.get(f"/avatar/user/{uid}").status_code == 401
    cost = first.json()["cost"]
    assert cost > 0

    m = scrape(server)
    gen = {"route": f"{API}/avatar/generate", "method": "POST"}
    assert value(m, "mirror_http_requests_total", **gen, status="200") == 2
    users = {"route": f"{API}/avatar/user/{{user_id}}", "method": "GET"}
    assert value(m, "mirror_http_requests_total", **users, status="200") == 1
    assert value(m, "mirror_http_requests_total", **users, status="401") == 1
    assert value(m, "mirror_http_requests_total", route="unmatched", method="GET", status="404") == 1
    assert value(m, "mirror_http_request_duration_seconds_count", **gen) == 2
    buckets = [
        s
        for s in m["mirror_http_request_duration_seconds"]
        if s.name.endswith("_bucket") and s.labels["route"] == gen["route"]
    ]
    assert buckets and max(s.value for s in buckets) == 2  # the +Inf bucket holds both

    assert value(m, "mirror_jobs_total", outcome="generated") == 1
    assert value(m, "mirror_jobs_total", outcome="cached") == 1
    assert value(m, "mirror_spend_usd_total", provider="openai") == pytest.approx(cost, abs=1e-6)
    model = store.list_avatars(uid)[0].model
    assert value(m, "mirror_provider_latency_seconds_count", provider="openai", model=model) == 1
    assert value(m, "mirror_job_step_duration_seconds_count", step="provider") == 1
    assert value(m, "mirror_job_step_duration_seconds_count", step="total") == 2  # the cache hit too
    assert value(m, "mirror_budget_usd") == BUDGET
    spent = value(m, "mirror_month_spend_usd")
    assert spent == pytest.approx(cost, abs=1e-6)
    assert value(m, "mirror_budget_headroom_usd") == pytest.approx(BUDGET - spent)
    assert value(m, "mirror_queue_depth") == 0
    for name in ("mirror_provider_retries_total", "mirror_provider_rate_limited_total"):
        assert value(m, name) == 0

    # bounded labels: no user id anywhere in a label, whatever the metric
    labels = {v for samples in m.values() for s in samples for v in s.labels.values()}
    assert not any(uid in v for v in labels)


def test_metrics_token(serve_settings, live):
    token = "m" * 24
    server = live(serve_settings(metrics_token=token))
    r = httpx.get(server.url + "/metrics", timeout=30)
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert httpx.get(server.url + "/metrics", headers={"Authorization": "Bearer nope"}, timeout=30).status_code == 401
    m = scrape(server, {"Authorization": f"Bearer {token}"})
    # the refused scrapes were counted as what they were
    assert value(m, "mirror_http_requests_total", route="/metrics", method="GET", status="401") == 2


def test_budget_thresholds_crossed_by_the_app_warn_once(serve_settings, live):
    from datetime import UTC, datetime

    from mirror_cli.models import LedgerEvent

    # a month of its own: the serve tests share one Firestore project, and the month's spend is the store's
    settings = serve_settings(limits={"monthly_budget_usd": 1.0}, now="2027-02-20T12:00:00Z")
    first = live(settings)
    store = first.service.core.store
    store.record_event(
        LedgerEvent(ts=datetime(2027, 2, 20, 9, tzinfo=UTC), user_id="u1", kind="generated", cost_usd=0.85)
    )
    m = scrape(first)
    spent = value(m, "mirror_month_spend_usd")
    assert spent == pytest.approx(0.85) and value(m, "mirror_budget_headroom_usd") == pytest.approx(1.0 - spent)
    assert value(m, "mirror_alerts_total", kind="budget") == 2  # 50 % and 80 %
    alerts = [e for e in store.iter_events(None, None, "_system") if e.kind == "alert"]
    assert len(alerts) == 2 and "of the $1.00 budget" in (alerts[0].detail or "")
    # another instance of the service: the same thresholds stay quiet
    second = live(settings)
    assert value(scrape(second), "mirror_alerts_total", kind="budget") == 0
    assert len([e for e in store.iter_events(None, None, "_system") if e.kind == "alert"]) == 2
