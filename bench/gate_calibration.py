"""Quality-gate calibration and compliance: the metrics over the local renderer's output for every
example persona and target, and over images built to fail.

    python bench/gate_calibration.py
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from gate_samples import bad_images

from mirror_cli.core import Mirror
from mirror_cli.settings import load_settings
from mirror_cli.validate import check_image, measure


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="mirror-gate-"))
    try:
        core = Mirror(load_settings({"data_dir": work}))
        core.import_examples()
        gate = core.configs.style.gate
        targets = [*core.configs.stages.names, *core.configs.stages.trilogy]
        ok = total = 0
        worst: dict[str, float] = {}
        for uid in sorted(core.user_ids()):
            for target in targets:
                report = core.generate([uid], target)
                for o in report.outcomes:
                    total += 1
                    ok += 1 if o.validation.get("ok") else 0
                    for k, v in o.validation.get("metrics", {}).items():
                        if k in ("noise", "edge_density"):
                            worst[k] = max(worst.get(k, 0), v)
                        else:
                            worst[k] = min(worst.get(k, 1e9), v)
        print(f"local renders: {ok}/{total} pass the gate -> compliance {ok / total:.1%} (target 90%)")
        print(
            "worst value of each metric over those renders: "
            + ", ".join(f"{k}={v:.3f}" for k, v in sorted(worst.items()))
        )
        print(
            f"thresholds: min_warm_share={gate.min_warm_share} min_warmth={gate.min_warmth} "
            f"max_noise={gate.max_noise} min_flat_share={gate.min_flat_share} "
            f"max_edge_density={gate.max_edge_density} min_stddev={gate.min_stddev}"
        )
        for name, img in bad_images().items():
            v = check_image(img, gate)
            m = measure(img)
            print(
                f"{name:>20}: {'PASS' if v.ok else 'FAIL'}  "
                + "; ".join(v.failures)
                + f"  [{', '.join(f'{k}={x}' for k, x in m.items())}]"
            )
        core.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
