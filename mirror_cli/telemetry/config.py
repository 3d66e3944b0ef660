"""The KPI targets and the alert thresholds (``targets:`` and ``alerts:`` in limits.yaml).

Defaults are the design's targets: success > 95 %, style compliance > 90 %, generation under 30 s
for 95 % of requests, cost under $2 per active user a month, 80 % cache hits. The identity-drift
and fallback targets are ours (the design names the figures, not their targets).
"""

from __future__ import annotations

from pydantic import Field, field_validator

from ..models import StrictConfig as Strict


class TargetsConfig(Strict):
    success_rate: float = Field(0.95, ge=0, le=1)  # at least: requests sent that returned an image
    style_compliance: float = Field(0.90, ge=0, le=1)  # at least: paid images passing the quality gate
    generation_p95_s: float = Field(30.0, gt=0, le=86400)  # at most: 95th percentile of a job's total time
    cost_per_active_user_usd: float = Field(2.0, ge=0)  # at most, per month
    cache_hit_rate: float = Field(0.80, ge=0, le=1)  # at least
    identity_drift_rate: float = Field(0.10, ge=0, le=1)  # at most: new stages too far from the anchor
    fallback_rate: float = Field(0.05, ge=0, le=1)  # at most: fallbacks among the avatars served


class AlertsConfig(Strict):
    # Fractions of monthly_budget_usd: each warns once a month, the first time spend reaches it.
    budget_thresholds: list[float] = Field(default_factory=lambda: [0.5, 0.8, 1.0], max_length=10)
    # A run whose failed jobs exceed this share of its jobs warns (runs of at least min_jobs jobs).
    failure_rate: float = Field(0.05, ge=0, le=1)
    failure_rate_min_jobs: int = Field(10, ge=1)
    # Optional: POST each warning as HMAC-SHA256-signed JSON here (the key comes from the
    # environment: MIRROR_ALERT_WEBHOOK_SECRET). Retried; never holds a run up for long.
    webhook_url: str | None = Field(None, pattern=r"^https?://[^\s]+$", max_length=2000)
    webhook_timeout_s: float = Field(5.0, gt=0, le=60)
    webhook_attempts: int = Field(3, ge=1, le=10)

    @field_validator("budget_thresholds")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        if any(not 0 < x <= 10 for x in v):
            raise ValueError("each threshold is a fraction of the monthly budget, above 0 and at most 10 (1.0 = 100 %)")
        return sorted(set(v))
