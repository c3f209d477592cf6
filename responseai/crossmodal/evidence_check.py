"""Does the cross-attention heatmap point at the lesion? A pointing game on fresh phantom cases.

    responseai evaluate crossmodal evidence [--weights W] [--n 200] [--seed 4000] --out DIR

For every lesion case (benign, in situ, invasive) of a phantom cohort the shipped model never
saw (seed 4000, all four sites): *hit* = the heatmap's maximum lies inside the true lesion box;
*mass* = the share of the heatmap's sum inside the box. Both are compared with what a heatmap
that ignores the image would score: the box's share of the image area. Percentile bootstrap
95 % CIs over cases. Inference only; writes ``evidence.json`` and ``evidence.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import torch

from responseai.crossmodal.explain import evidence
from responseai.crossmodal.fitting import cohort_tensors
from responseai.crossmodal.inference import DEFAULT, load_crossmodal
from responseai.crossmodal.phantom import make_cohort
from responseai.metrics import bootstrap
from responseai.outputs import json_safe

log = logging.getLogger(__name__)


@torch.no_grad()
def pointing_game(weights: Path, n: int, seed: int) -> dict[str, np.ndarray]:
    """Per lesion case: hit (0/1), heatmap mass in the box, box area fraction."""
    model, _ = load_crossmodal(weights)
    size = model.config.image_size
    cohort = make_cohort(n, seed, size=size)
    data = cohort_tensors(cohort, size)
    hits, mass, area = [], [], []
    for i in np.nonzero(cohort.box[:, 0] >= 0)[0]:
        tokens_m = model.encode(data.mammogram[i:i + 1], "mammogram")[0]
        tokens_p = model.encode(data.pathology[i:i + 1], "pathology")
        grid = evidence(model, tokens_m, tokens_p).heatmap
        heat = torch.nn.functional.interpolate(torch.as_tensor(grid)[None, None], size=(size, size), mode="bilinear",
                                               align_corners=False)[0, 0].numpy()
        r0, c0, r1, c1 = cohort.box[i]
        inside = np.zeros((size, size), bool)
        inside[r0:r1, c0:c1] = True
        hits.append(float(inside.flat[heat.argmax()]))
        mass.append(float(heat[inside].sum() / heat.sum()))
        area.append(float(inside.mean()))
    return {"hit": np.array(hits), "mass": np.array(mass), "area": np.array(area)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="responseai evaluate crossmodal evidence", description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, default=DEFAULT)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--seed", type=int, default=4000)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cases = pointing_game(args.weights, args.n, args.seed)
    metrics = bootstrap(lambda h, m, a: {"hit_rate": float(h.mean()), "chance_hit_rate": float(a.mean()),
                                         "mass_in_box": float(m.mean()), "box_area_fraction": float(a.mean())},
                        (cases["hit"], cases["mass"], cases["area"]), args.n_boot, 0)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "evidence.json").write_text(json.dumps(json_safe({"settings": {k: str(v) for k, v in vars(args).items()},
                                                                  "n_lesion_cases": len(cases["hit"]),
                                                                  "metrics": metrics}), indent=2) + "\n",
                                            encoding="utf-8")
    fmt = lambda m: f"{m['value']:.3f} [{m['ci_low']:.3f}, {m['ci_high']:.3f}]"
    table = ("| lesion cases | heatmap maximum in the lesion box | chance (box area share) | heatmap mass in the box |\n"
             "| --- | --- | --- | --- |\n"
             f"| {len(cases['hit'])} | {fmt(metrics['hit_rate'])} | {fmt(metrics['chance_hit_rate'])} | "
             f"{fmt(metrics['mass_in_box'])} |\n")
    (args.out / "evidence.md").write_text(table, encoding="utf-8")
    log.info("pointing game written to %s\n%s", args.out, table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
