"""A damaged spool entry is kept, not overwritten: moved aside with a warning, its spend booked,
counted by `doctor`, and only then is the job's image bought again."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("damage", [b"not json\n\x89PNG", b'{"state":"paid","image_bytes":99}\nshort'])
def test_a_damaged_entry_is_set_aside_booked_and_counted(make_core, openai_env, fast_configs, damage):
    core = make_core(provider="openai", base_url=openai_env.url, config_dir=fast_configs)
    persona = core.persona("demo")
    job = core.planner().plan(persona, persona.progress, "month")
    entry = core.spool.root / "demo" / f"{job.request_key}.spool"
    entry.parent.mkdir(parents=True)
    entry.write_bytes(damage)

    report = core.generate(["demo"], "month")

    assert report.outcomes[0].status == "generated" and len(openai_env.ledger) == 1
    aside = core.spool.damaged()
    assert len(aside) == 1 and aside[0].read_bytes() == damage  # kept as it was, for a person
    maybe = [e for e in core.store.events() if e.kind == "may_have_billed"]
    assert len(maybe) == 1 and "damaged spool entry" in (maybe[0].detail or "") and maybe[0].cost_usd > 0
    checks = {c["check"]: c for c in core.doctor()}
    assert checks["spool_damaged"]["status"] == "warn" and "1 damaged" in (checks["spool_damaged"]["detail"] or "")
