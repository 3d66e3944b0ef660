from typing import Annotated, Any

from .common import Edge, option, outputs, with_settings


@with_settings
@outputs("verbose", "as_json", "debug")
def worker(
    edge: Edge,
    until_empty: Annotated[
        bool, option("--until-empty", help="Stop once the queue has nothing to deliver (a one-off drain).")
    ] = False,
    batch: Annotated[int, option("--batch", metavar="N", min=1, max=64, help="Messages pulled at a time.")] = 4,
) -> None:
    """Run queued avatar jobs (from the app or `evolve --due --enqueue`): ack after the avatar is
    stored, redeliver what may pass, dead-letter after the queue's max attempts. Ctrl-C stops."""
    stats = edge.run(lambda core: core.work(until_empty=until_empty, batch=batch, handlers=_app_jobs(core)))
    summary = stats.to_dict()

    def human() -> None:
        from .. import console

        shown = ", ".join(f"{k} {v}" for k, v in sorted(summary["outcomes"].items())) or "none"
        console.info(f"worker: {summary['acked']} acked, {summary['retried']} given back; outcomes: {shown}.")

    edge.emit(summary, items=[], human=human)


def _app_jobs(core: Any) -> dict[str, Any] | None:
    """The app's 202 jobs need the server's code (the serve extra); without it they are given back."""
    try:
        from ..server.service import worker_handlers
    except ImportError:
        return None
    return worker_handlers(core)
