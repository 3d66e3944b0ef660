"""The quality gate on images built for the purpose, on every shipped fallback, and in the pipeline."""

from __future__ import annotations

import hashlib
import json

import gate_samples
import pytest
import yaml
from conftest import ROOT

from mirror_cli.config import ConfigSet, GateConfig
from mirror_cli.imaging import decode
from mirror_cli.validate import check_image

GATE = ConfigSet(ROOT / "configs").style.gate
FALLBACKS = ROOT / "fallback_assets" / "daymi"


def failures(img, gate=GATE):
    return " ".join(check_image(img, gate).failures)


def test_cold_blue_fails_the_palette_check():
    f = failures(gate_samples.cold_blue())
    assert "palette not warm enough" in f and "too cold" in f
    assert "noise" not in f  # it is flat: only the palette is wrong


@pytest.mark.parametrize("make", [gate_samples.photo_like, gate_samples.warm_noise])
def test_photo_like_noise_fails_the_cartoon_check(make):
    f = failures(make())
    assert "texture noise" in f and "edge density" in f
    assert "palette" not in f  # it is warm: only the look is wrong


def test_blank_and_wrong_size_are_hard_failures():
    blank = check_image(gate_samples.blank_amber(), GATE, (1024, 1024))
    assert "near-uniform" in " ".join(blank.failures) and blank.hard
    small = check_image(gate_samples.blank_amber().resize((512, 512)), GATE, (1024, 1024))
    assert "is not 1024x1024" in " ".join(small.failures) and small.hard
    cold = check_image(gate_samples.cold_blue(), GATE, (1024, 1024))
    assert not cold.ok and not cold.hard  # palette and texture are heuristics


def test_size_check_follows_the_requested_size():
    wide = gate_samples.blank_amber().resize((1536, 1024))
    assert not any("size" in f for f in check_image(wide, GATE, (1536, 1024)).failures)
    assert any("is not 1024x1536" in f for f in check_image(wide, GATE, (1024, 1536)).failures)


def test_post_process_keeps_the_aspect_ratio():
    import io

    from mirror_cli.imaging import post_process

    buf = io.BytesIO()
    gate_samples.cold_blue().resize((768, 512)).save(buf, format="PNG")
    assert post_process(buf.getvalue(), (1536, 1024))[0].size == (1536, 1024)  # same shape: scaled
    assert post_process(buf.getvalue(), (1024, 1024))[0].size == (768, 512)  # other shape: kept


def test_gate_can_be_disabled():
    assert check_image(gate_samples.cold_blue(), GateConfig(enabled=False)).ok


def test_shipped_fallback_set_is_complete_hashes_match_and_passes():
    manifest = json.loads((FALLBACKS / "manifest.json").read_text())
    cfg = ConfigSet(ROOT / "configs")
    targets = {*cfg.stages.names, *cfg.stages.trilogy}
    variants = {v.name for v in cfg.fallbacks.variants}
    pairs = {(e["stage"], e["variant"]) for e in manifest["entries"]}
    assert pairs == {(t, v) for t in targets for v in variants}
    for e in manifest["entries"]:
        data = (FALLBACKS / e["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == e["sha256"] and len(data) == e["size"]
        assert {"provider", "model", "prompt", "created"} <= set(e)
        verdict = check_image(decode(data), GATE)
        assert verdict.ok, (e["file"], verdict.failures)


def test_seed_fallbacks_is_idempotent_and_dry_run_costs(make_core, tmp_path):
    core = make_core(fallback_dir=tmp_path / "fb")
    first = core.seed_fallbacks(only=["month"], variants=["dark-fro", "pale-long"])
    assert first["rendered"] == 2 and (tmp_path / "fb" / "daymi" / "month" / "dark-fro.webp").exists()
    again = core.seed_fallbacks(only=["month"], variants=["dark-fro", "pale-long"])
    assert again["rendered"] == 0 and again["unchanged"] == 2
    dry = core.seed_fallbacks(only=["quarter"], dry_run=True)
    assert dry["planned"] == 6 and dry["rendered"] == 0
    assert not (tmp_path / "fb" / "daymi" / "quarter").exists()


def test_fallback_choice_is_closest_to_the_persona(make_core):
    core = make_core()
    assert core.fallbacks.pick("month", core.persona("amira")).name == "brown-hijab.webp"
    assert core.fallbacks.pick("month", core.persona("maya")).name == "dark-fro.webp"
    assert core.fallbacks.pick("month", core.persona("sofia")).name == "pale-long.webp"


def test_heuristic_failure_is_stored_flagged_not_bought_again(make_core, openai_env, fast_configs):
    openai_env.off_style = 1  # a cold palette: a matter of taste, the image is usable
    core = make_core(provider="openai", base_url=openai_env.url, config_dir=fast_configs)
    out = core.generate(["demo"], "month").outcomes[0]
    assert out.status == "generated" and out.record.status == "flagged"
    assert "palette" in out.record.reason and "stored flagged" in out.reason
    assert len(openai_env.ledger) == 1  # paid once
    paid = [e for e in core.store.events() if e.kind == "generated"]
    assert [e.validation_ok for e in paid] == [False]
    assert core.usage().compliance_rate == 0.0


def _opt_in(fast_configs, **gate):
    style = fast_configs / "styles" / "daymi.yaml"
    data = yaml.safe_load(style.read_text())
    data["gate"].update(gate)
    style.write_text(yaml.safe_dump(data))


@pytest.mark.parametrize("bad", ["blank", "garbage", "small"])
def test_hard_failure_is_retried_once_with_reinforced_prompt(make_core, openai_env, fast_configs, bad):
    openai_env.bad_next.append(bad)
    core = make_core(provider="openai", base_url=openai_env.url, config_dir=fast_configs)
    report = core.generate(["demo"], "month")
    out = report.outcomes[0]
    assert out.status == "generated" and out.record.status == "ok", out.reason
    assert len(openai_env.ledger) == 2
    second_prompt = openai_env.requests[1]["params"]["prompt"]
    assert core.configs.style.reinforce_prompt.strip() in second_prompt
    paid = [e for e in core.store.events() if e.kind == "generated"]
    assert [e.validation_ok for e in paid] == [False, True]
    assert sum(e.cost_usd for e in paid) == pytest.approx(out.cost_usd)
    rejected = [p for p in (core.settings.data_dir / "avatars" / "demo").iterdir() if p.name.startswith("rejected-")]
    assert len(rejected) == 1  # the paid, rejected image is kept for review
    assert core.spool.pending() == []


def test_style_may_opt_in_to_rebuying_heuristic_failures(make_core, openai_env, fast_configs):
    _opt_in(fast_configs, retry_on_heuristic=True)
    openai_env.off_style = 1
    core = make_core(provider="openai", base_url=openai_env.url, config_dir=fast_configs)
    out = core.generate(["demo"], "month").outcomes[0]
    assert out.status == "generated" and out.record.status == "ok" and len(openai_env.ledger) == 2


def test_twice_failing_hard_check_is_stored_flagged(make_core, openai_env, fast_configs):
    openai_env.bad_next.extend(["blank", "blank"])
    core = make_core(provider="openai", base_url=openai_env.url, config_dir=fast_configs)
    out = core.generate(["demo"], "month").outcomes[0]
    assert out.status == "generated" and out.record.status == "flagged"
    assert "near-uniform" in out.record.reason and len(openai_env.ledger) == 2


def test_flagged_image_replaced_by_fallback_when_configured(make_core, openai_env, fast_configs):
    _opt_in(fast_configs, on_fail="fallback")
    openai_env.off_style = 1
    core = make_core(provider="openai", base_url=openai_env.url, config_dir=fast_configs)
    out = core.generate(["maya"], "month").outcomes[0]
    assert out.status == "fallback" and out.served_path.endswith("month/dark-fro.webp")
    assert len(openai_env.ledger) == 1


def test_non_square_size_passes_the_gate_and_keeps_its_shape(make_core, openai_env, fast_configs):
    core = make_core(provider="openai", base_url=openai_env.url, config_dir=fast_configs, size="1536x1024")
    out = core.generate(["demo"], "month").outcomes[0]
    assert out.status == "generated" and out.record.status == "ok", out.reason
    assert (out.record.width, out.record.height) == (1536, 1024)
    assert len(openai_env.ledger) == 1


def test_resume_after_a_kill_during_the_gate_retry_never_resends_the_first_request(make_core, openai_env, fast_configs):
    """The first image was paid, kept as rejected and the retry marked in the spool; the process
    died before the retry was answered. Resuming sends the reinforced retry only."""
    from mirror_cli.pipeline import paid_event  # noqa: F401  (the ledger line the first image got)

    core = make_core(provider="openai", base_url=openai_env.url, config_dir=fast_configs)
    job = core.planner().plan(core.persona("demo"), core.persona("demo").progress, "month")
    core.spool.mark_retry("demo", job.request_key, {"user_id": "demo", "target": "month", "attempt": "first"})
    out = core.generate(["demo"], "month").outcomes[0]
    assert out.status == "generated" and out.record.status == "ok"
    assert len(openai_env.requests) == 1
    assert core.configs.style.reinforce_prompt.strip() in openai_env.requests[0]["params"]["prompt"]
    assert core.spool.pending() == []


def _moderated(tmp_path, make_core, openai_env):
    from conftest import make_config_dir

    cfg = make_config_dir(tmp_path, {"moderation": {"enabled": True, "model": "omni-moderation-latest"}})
    return make_core(provider="openai", base_url=openai_env.url, config_dir=cfg)


def test_moderation_screen_blocks_before_the_image_endpoint(tmp_path, make_core, openai_env):
    from mirror_cli.models import Progress

    core = _moderated(tmp_path, make_core, openai_env)
    core.set_progress("maya", Progress(active_days=40, discovered_traits=["I want to punch my boss"]))
    out = core.generate(["maya"], "month").outcomes[0]
    assert out.status == "blocked" and "violence" in out.reason
    assert openai_env.requests == [] and openai_env.ledger == []  # no image request at all
    assert openai_env.moderation_requests[0][0] == "I want to punch my boss"
    assert out.served_path.endswith("month/dark-fro.webp")


def test_moderation_clear_text_goes_through(tmp_path, make_core, openai_env):
    core = _moderated(tmp_path, make_core, openai_env)
    assert core.generate(["demo"], "month").count("generated") == 1
    assert len(openai_env.moderation_requests) == 1 and len(openai_env.ledger) == 1


def test_moderation_outage_sends_no_free_text(tmp_path, make_core, openai_env):
    from openai_server import Fault

    core = _moderated(tmp_path, make_core, openai_env)
    openai_env.push(*[Fault(500)] * 4)  # every moderation attempt fails
    assert core.generate(["maya"], "month").count("generated") == 1
    prompt = openai_env.requests[0]["params"]["prompt"]
    assert core.configs.style.safe_prompt.strip() in prompt and "imaginative" not in prompt


def test_deny_listed_free_text_is_blocked_without_any_request(make_core, openai_env, fast_configs):
    from mirror_cli.models import Progress

    core = make_core(provider="openai", base_url=openai_env.url, config_dir=fast_configs)
    core.set_progress("demo", Progress(active_days=40, major_achievement="x" * 10 + " nude photo shoot"))
    out = core.generate(["demo"], "month").outcomes[0]
    assert out.status == "blocked" and "deny-listed" in out.reason and openai_env.requests == []


def test_seed_fallbacks_is_a_recorded_run(make_core, tmp_path):
    core = make_core(fallback_dir=tmp_path / "fb")
    result = core.seed_fallbacks(only=["firstWeek"], variants=["tan-bob"])
    run = core.store.get_run(result["run_id"])
    assert run.command == "seed-fallbacks" and run.state == "finished" and run.counts["generated"] == 1
    assert [(s.job_id, s.state) for s in core.store.job_states(run.id)] == [("tan-bob.firstWeek", "done")]
