"""``mirror doctor``: every check runs and reports; a failing one (a store that is down, a missing
key) is a ``fail`` row with the fix, never an exception."""

from __future__ import annotations

from collections.abc import Callable

from ..clock import today
from ..errors import MirrorError
from ..wiring import Wiring

Row = dict[str, str | None]


def row(check: str, status: str, detail: str, fix: str | None = None) -> Row:
    return {"check": check, "status": status, "detail": detail, "fix": fix}


def _failure(check: str, exc: Exception, prefix: str = "", fix: str | None = None) -> Row:
    message = exc.message if isinstance(exc, MirrorError) else f"{type(exc).__name__}: {exc}"
    lines = message.splitlines()
    hint = exc.hint if isinstance(exc, MirrorError) else None
    return row(check, "fail", prefix + (lines[0] if lines else ""), hint or fix)


def doctor(w: Wiring) -> list[Row]:
    from ..review.doctor import approvals_check

    checks: list[tuple[str, Callable[[Wiring], list[Row]]]] = [
        ("configs", check_configs),
        ("store", check_store),
        ("model", check_model),
        ("provider", check_provider),
        ("image moderation", check_moderation),
        ("spool", check_spool),
        ("fallbacks", check_fallbacks),
        ("approvals", lambda w: approvals_check(w.fallbacks)),
        ("identity", check_identity),
        ("nightly", check_nightly),
    ]
    rows: list[Row] = []
    for name, check in checks:
        try:
            rows.extend(check(w))
        except Exception as exc:
            rows.append(_failure(name, exc))
    return rows


def check_configs(w: Wiring) -> list[Row]:
    from ..resources import default_config_dir

    shipped = w.configs.root.resolve() == default_config_dir().resolve()
    where = "the package's defaults" if shipped else str(w.configs.root)
    style = w.configs.style
    return [row("configs", "ok", f"{where} valid (style {style.name} v{style.version})")]


def check_store(w: Wiring) -> list[Row]:
    try:
        ops = w.store.op_counts(w.now().strftime("%Y-%m-%d"))
    except Exception as exc:
        return [_failure("store", exc, f"{w.settings.store}: ", "Check --store and its settings.")]
    n = sum(v for k, v in ops.items() if k != "bytes_stored")
    rows = [row("store", "ok", f"{w.settings.store} reachable; {n} operations today")]
    store_checks = getattr(w.store, "doctor_checks", None)  # a back-end's own lines
    if store_checks is not None:
        rows.extend(store_checks())
    return rows


def check_model(w: Wiring) -> list[Row]:
    name, models = w.model_name, w.configs.models
    entry = models.models.get(name)
    if entry is None:
        return [row("model", "fail", f"{name} is not in models.yaml", f"Use one of: {', '.join(models.models)}")]
    day = today(w.now)
    moves = ", ".join(entry.replacements)
    state = entry.lifecycle(day)
    if state == "shut_down":
        rows = [row("model", "fail", f"{name} was shut down on {entry.shutdown_date}", f"Switch to {moves}")]
    elif state == "retiring":
        rows = [row("model", "warn", f"{name} shuts down on {entry.shutdown_date}", f"Plan the move to {moves}")]
    else:
        rows = [row("model", "ok", f"{name} ({entry.snapshot})")]
    default = models.default
    if default != name and models.models[default].lifecycle(day) == "shut_down":
        # Only a warning: the configs in use may outlive a shipped default; runs name their model.
        detail = f"models.yaml's default {default} has shut down"
        rows.append(row("default model", "warn", detail, "Set 'default' in configs/models.yaml to a current model"))
    return rows


def check_provider(w: Wiring) -> list[Row]:
    return w.run_async(provider_checks(w, w.model_name))


async def provider_checks(w: Wiring, model: str) -> list[Row]:
    check = getattr(w.provider, "check", None)
    if check is None:
        return [row("provider", "ok", f"{w.settings.provider}: {w.provider.renderer_version}")]
    result: list[Row] = await check(model)
    return result


def check_moderation(w: Wiring) -> list[Row]:
    """Whether every paid image is checked before it is shown (limits.image_moderation) with the
    configured provider; no request is made (the moderation endpoint is free, but a check is not
    a health probe)."""
    from ..providers.base import ImageModerator

    cfg, name = w.configs.limits.image_moderation, w.settings.provider
    if not cfg.enabled:
        fix = "Set image_moderation: {enabled: true} under limits in limits.yaml (it is on by default)."
        return [row("image moderation", "warn", "off (limits.image_moderation): paid images are shown unchecked", fix)]
    try:
        provider = w.provider
    except MirrorError as exc:
        detail = f"on ({cfg.model}), but the {name} provider cannot be used: {exc.message.splitlines()[0]}"
        return [row("image moderation", "warn", detail, exc.hint)]
    if isinstance(provider, ImageModerator):
        detail = (
            f"on: every paid image is checked with {cfg.model} ({name}) before it is shown; a flagged one stays hidden"
        )
        return [row("image moderation", "ok", detail)]
    detail = f"not available with the {name} provider: its images are stored with the verdict 'skipped'"
    return [row("image moderation", "ok", detail)]


def check_nightly(w: Wiring) -> list[Row]:
    from .due import overdue_users

    nightly = w.configs.limits.nightly
    overdue = overdue_users(w)
    detail = f"window {nightly.window.label} local (default zone {nightly.timezone}); {overdue} user(s) overdue"
    if not overdue:
        return [row("nightly", "ok", detail)]
    fix = (
        "Due users missed their whole nightly window: schedule 'mirror evolve --due' hourly "
        "(Cloud Scheduler or a CronJob '0 * * * *'); they are served in their next night."
    )
    return [row("nightly", "warn", detail, fix)]


def check_spool(w: Wiring) -> list[Row]:
    pending = w.spool.pending()
    damaged = w.spool.damaged()
    rows = [row("spool", "ok", "empty")]
    if pending:
        fix = "Run the same command again: spooled images are ingested without paying."
        rows = [row("spool", "warn", f"{len(pending)} paid image(s) waiting to be stored", fix)]
    if damaged:
        detail = f"{len(damaged)} damaged spool entr{'y' if len(damaged) == 1 else 'ies'} set aside (e.g. {damaged[0]})"
        fix = "Recover the image by hand if you can, then delete the file; its spend is in the ledger."
        rows.append(row("spool_damaged", "warn", detail, fix))
    return rows


def check_fallbacks(w: Wiring) -> list[Row]:
    n_fb = len(w.fallbacks.entries)
    stages = w.configs.stages
    expected = len(w.configs.fallbacks.variants) * (len(stages.names) + len(stages.trilogy))
    own = len(w.fallbacks.folders[0].entries)
    detail = f"{n_fb}/{expected} fallback assets ({own} from {w.fallbacks.folder}, the rest shipped with the package)"
    if n_fb >= expected:
        return [row("fallbacks", "ok", detail)]
    return [row("fallbacks", "warn", detail, "Run 'mirror seed-fallbacks'.")]


def check_identity(w: Wiring) -> list[Row]:
    from .. import identity

    usable, why = identity.available()
    settings = w.configs.style.identity
    if not settings.enabled:
        return [row("identity", "ok", "same-face score off in the style")]
    if usable:
        return [row("identity", "ok", f"same-face score on (threshold {settings.threshold}): {why}")]
    return [row("identity", "warn", f"same-face score skipped: {why}", identity.EXTRA_HINT)]
