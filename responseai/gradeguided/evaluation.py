"""What a missing modality costs a grade-guided model: held-out response AUC with CT, MRI or PET absent.

The Slicer module and ``responseai predict gradeguided`` accept any subset of the six channels for a model
trained with modality dropout, filling the missing ones with zeros. A user deciding whether to
run without the PET needs the price of that in accuracy; this measures it on the same held-out
phantom cohorts as :mod:`training.gradeguided_ablation` (test seed + 1000, external site D
seed + 2000), with the biopsy grade given, for every group of channels removed at once.

    responseai evaluate gradeguided missing --weights MODEL.safetensors --out DIR \
        [--seed 0 --n-test 300 --n-external 200 --n-boot 1000]

Writes ``missing_modalities.{md,json}`` into ``DIR``.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import torch

from responseai.gradeguided.model import TASK, build_model, predict_arrays
from responseai.gradeguided.phantom import SITES, assign_split, generate_case
from responseai.gradeguided.preprocess import RoiSpec, Sample, clinical_encoder_from_card, prepare_inputs
from responseai.metrics import auc_metric, bootstrap
from responseai.outputs import json_safe
from responseai.weights import load_model

log = logging.getLogger(__name__)

MISSING_GROUPS = {
    "none": (),
    "CT (3 phases)": ("ct_nc", "ct_art", "ct_pv"),
    "MRI (T1, T2)": ("mr_t1", "mr_t2"),
    "PET": ("pet",),
    "CT and MRI (PET only)": ("ct_nc", "ct_art", "ct_pv", "mr_t1", "mr_t2"),
    "CT and PET (MRI only)": ("ct_nc", "ct_art", "ct_pv", "pet"),
}


EXTERNAL_SITE = next(s for s in SITES if s.external)


def phantom_samples(seed: int, n: int, split: str | None = None, external_only: bool = False) -> tuple[list[Sample], np.ndarray]:
    """``n`` phantom cases as samples (split from the generator unless given) and their true subtypes."""
    samples, subtypes = [], []
    for index in range(n):
        case = generate_case(seed, index, site=EXTERNAL_SITE if external_only else None)
        case_split = "external" if case.site.external else (split or assign_split(seed, index, case.site))
        samples.append(Sample(case.patient_id, case.images, case.mask, case.clinical, case.grade - 1, case.response,
                              case_split, case.pfs_months, case.pfs_event, case.site.name))
        subtypes.append(case.truth["subtype"])
    return samples, np.asarray(subtypes)


def development_samples(n: int, seed: int) -> list[Sample]:
    """The development cohort a model is trained on: ``train`` and ``val`` splits of phantom ``seed``."""
    samples, _ = phantom_samples(seed, n)
    return [s for s in samples if s.split in ("train", "val")]


def missing_modality_auc(weights: str | Path, seed: int, n_test: int, n_external: int, n_boot: int) -> dict:
    """Response AUC [95 % CI] per cohort and per removed channel group."""
    model, card = load_model(weights, build_model, TASK)
    if card["inputs"].get("missing_modalities") != "zero_channel":
        raise ValueError(f"{weights}: this model was trained without modality dropout; it cannot run with a modality missing")
    test, _ = phantom_samples(seed + 1000, n_test, split="test")
    external, _ = phantom_samples(seed + 2000, n_external, external_only=True)
    held_out = test + external
    inputs = prepare_inputs(held_out, RoiSpec.from_dict(card["preprocessing"]["roi"]),
                            clinical_encoder_from_card(card["preprocessing"]["clinical_encoder"]))
    response = np.array([s.response for s in held_out])
    cohorts = {"test": np.array([s.split == "test" for s in held_out]),
               "external": np.array([s.split == "external" for s in held_out])}
    channels = card["inputs"]["modalities"]
    result: dict[str, dict] = {}
    for group, removed in MISSING_GROUPS.items():
        image = inputs.image.copy()
        image[:, [channels.index(name) for name in removed]] = 0.0
        prob = predict_arrays(model, image, inputs.clinical, inputs.grade)["response_prob"]
        result[group] = {c: bootstrap(auc_metric, (response[m], prob[m]), n_boot)["auc"] for c, m in cohorts.items()}
        log.info("missing %s: external AUC %.3f", group, result[group]["external"]["value"])
    return {"weights": str(weights), "model": card["name"], "sha256": card["sha256"], "seed": seed,
            "n_test": int(cohorts["test"].sum()), "n_external": int(cohorts["external"].sum()), "auc": result}


def markdown(report: dict) -> str:
    """One table: removed channels × cohort."""
    def ci(e: dict) -> str:
        return f"{e['value']:.3f} [{e['ci_low']:.3f}, {e['ci_high']:.3f}]"
    lines = [f"Model `{report['model']}` (sha256 {report['sha256'][:8]}…); test n={report['n_test']}, external "
             f"n={report['n_external']}; biopsy grade given; missing channels set to zero.", "",
             "| channels missing | response AUC, test | response AUC, external |", "|---|---|---|"]
    lines += [f"| {group} | {ci(e['test'])} | {ci(e['external'])} |" for group, e in report["auc"].items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="responseai evaluate gradeguided missing", description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-test", type=int, default=300)
    parser.add_argument("--n-external", type=int, default=200)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    report = json_safe(missing_modality_auc(args.weights, args.seed, args.n_test, args.n_external, args.n_boot))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "missing_modalities.json").write_text(json.dumps(report, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    (args.out / "missing_modalities.md").write_text(markdown(report), encoding="utf-8")
    log.info("wrote %s", args.out / "missing_modalities.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
