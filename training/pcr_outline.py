"""Refit the pCR model's kinetic-feature term on tumour outlines perturbed the way a segmentation errs.

Why: the six kinetic features (:mod:`responseai.breast.pcr.features`) are read inside the tumour mask —
rim-to-core from its outer two voxels, peritumoural enhancement from a three-voxel shell outside it. The
model learnt their weights on the phantom's exact tumour masks, but a user gets the segmentation's
outline. On development site E of main seed 281 (63 exams, segmentation 2.12.0), the automatic outline
moved the pCR logit by 0.33 on average and by −0.15 systematically, almost all of it through rim-to-core
(−0.18) and peritumoural enhancement (−0.11); the CNN and clinical parts moved by 0.001. An outline a
radiologist would accept (Dice 0.91) could move a probability by 0.2.

So everything but the seven parameters of the kinetic-feature term (weights and bias; the
standardisation statistics stay) is kept, and that term is refitted by L-BFGS on the training exams with
``draws`` perturbed outlines each, the rest of the model's logit as an offset — the class-balanced loss
and L2 of step 3's clinical term (:func:`training.breast_pcr.fit_clinical_term`). The threshold is chosen
again on the validation rows (their perturbed outlines), never on test exams.

An outline is perturbed in millimetres on the crop grid (:func:`perturb_outline`): its signed distance
moved by a global offset (grown or shrunk), a smooth random field (an irregular edge) and a tilt along
a random direction (one side grown, the other cut: a partial or shifted outline), then its largest
component kept. The spread was matched to the segmentation's own Dice on development exams (``--calibrate``).

Usage:
    python -m training.train breast pcr-outline --weights W --manifest TRAIN.csv --calibrate DEV.csv SEGMENTATION.json
    python -m training.train breast pcr-outline --weights W --manifest TRAIN.csv --out W2 --version 1.5.0
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import ndimage
from sklearn.metrics import roc_auc_score
from tqdm import tqdm

from responseai.breast.pcr.cohort import Cohort, load_cohort, predict_logits, probabilities
from responseai.breast.pcr.features import kinetic_features
from responseai.breast.constants import BREAST_SCHEMA
from responseai.breast.pcr.model import TASK, build_model
from responseai.clinical import ClinicalEncoder
from responseai.breast.pcr.preprocess import prepare_case
from responseai.io import read_image
from responseai.metrics import binary_report, dice
from responseai.weights import load_model, read_card, save_model
from training.breast_pcr import choose_threshold, fit_linear_term

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutlineNoise:
    """How far a perturbed outline strays, in millimetres (the defaults are ``--calibrate``'s choice)."""

    offset_mean_mm: float = -0.3  # the segmentation's outlines run a little small (volume ratio median 0.94)
    offset_sd_mm: float = 0.8
    edge_mm: float = 1.2  # largest amplitude of the smooth field (its SD, drawn uniformly up to this)
    edge_smoothness_mm: float = 3.0
    tilt_max: float = 0.35  # mm of outline moved per mm along the tilt direction (drawn uniformly up to this)


def perturb_outline(mask: np.ndarray, spacing_mm: float, noise: OutlineNoise, rng: np.random.Generator) -> np.ndarray:
    """One perturbed copy of a binary mask (never empty: the original is returned if a draw empties it)."""
    tumour = mask > 0
    inside = ndimage.distance_transform_edt(tumour) * spacing_mm
    outside = ndimage.distance_transform_edt(~tumour) * spacing_mm
    signed = outside - inside  # < 0 inside, mm
    field = ndimage.gaussian_filter(rng.standard_normal(tumour.shape), noise.edge_smoothness_mm / spacing_mm)
    field /= max(float(field.std()), 1e-6)
    direction = rng.standard_normal(3)
    direction /= np.linalg.norm(direction)
    grid = np.indices(tumour.shape, dtype=np.float32)
    centre = np.array(ndimage.center_of_mass(tumour), np.float32)
    along = sum(direction[a] * (grid[a] - centre[a]) for a in range(3)) * spacing_mm
    level = (rng.normal(noise.offset_mean_mm, noise.offset_sd_mm) + rng.uniform(0, noise.edge_mm) * field
             + rng.uniform(0, noise.tilt_max) * along)
    out = signed < level
    labels, n = ndimage.label(out)
    if n == 0:
        return tumour.astype(np.uint8)
    sizes = ndimage.sum(out, labels, range(1, n + 1))
    return (labels == 1 + int(np.argmax(sizes))).astype(np.uint8)


def perturbed_features(cohort: Cohort, rows: np.ndarray, draws: int, noise: OutlineNoise, spacing_mm: float,
                       seed: int) -> np.ndarray:
    """rows × draws × 6 kinetic features, each on its own perturbed outline (one stream per exam)."""
    out = np.empty((len(rows), draws, cohort.radiomics.shape[1]), np.float32)
    for i, row in enumerate(tqdm(rows, desc="perturbed outlines")):
        rng = np.random.default_rng([seed, int(row)])
        for d in range(draws):
            out[i, d] = kinetic_features(cohort.images[row], perturb_outline(cohort.masks[row], spacing_mm, noise, rng))
    return out


def logit_without_kinetics(model, cohort: Cohort, rows: np.ndarray, device: torch.device) -> np.ndarray:
    """The model's logit minus its kinetic-feature term: the fixed offset of the refit."""
    logits = predict_logits(model, cohort, rows, device)[0]
    with torch.no_grad():
        kinetic = model.radiomics_logit(torch.from_numpy(cohort.radiomics[rows])).numpy()
    return logits - kinetic


def refit_kinetic_term(model, offset: np.ndarray, features: np.ndarray, labels: np.ndarray) -> None:
    """Class-balanced logistic fit of the kinetic term's weights and bias, ``offset`` fixed (L-BFGS, L2 as C = 1)."""
    draws = features.shape[1]
    x = torch.from_numpy(features.reshape(-1, features.shape[2]))
    base = torch.from_numpy(np.repeat(offset, draws).astype(np.float32))
    y = torch.from_numpy(np.repeat(labels, draws).astype(np.float32))
    fit_linear_term(model.radiomics_head, lambda: base + model.radiomics_logit(x), y, len(labels))


def draw_probabilities(model, offset: np.ndarray, features: np.ndarray, logit_offset: float) -> np.ndarray:
    """rows × draws probabilities: fixed offsets, each draw's kinetic term."""
    with torch.no_grad():
        kinetic = model.radiomics_logit(torch.from_numpy(features.reshape(-1, features.shape[2]))).numpy()
    return probabilities(np.repeat(offset, features.shape[1]) + kinetic, logit_offset).reshape(features.shape[:2])


def outline_report(model, cohort: Cohort, offsets: dict, features: dict, logit_offset: float) -> dict:
    """Per split: AUC on the true outlines and on the perturbed ones (all draws), and how far a draw moves
    the probability from the true outline's (mean absolute and mean signed)."""
    report = {}
    for split, rows in (("train", cohort.rows("train")), ("val", cohort.rows("val"))):
        exact = draw_probabilities(model, offsets[split], cohort.radiomics[rows][:, None], logit_offset)[:, 0]
        drawn = draw_probabilities(model, offsets[split], features[split], logit_offset)
        labels = cohort.labels[rows]
        report[split] = {
            "auc_true_outline": round(float(roc_auc_score(labels, exact)), 4),
            "auc_perturbed_outlines": round(float(roc_auc_score(np.repeat(labels, drawn.shape[1]), drawn.ravel())), 4),
            "probability_change_mean_abs": round(float(np.abs(drawn - exact[:, None]).mean()), 4),
            "probability_change_mean": round(float((drawn - exact[:, None]).mean()), 4),
        }
    return report


def calibrate(manifest: Path, evaluation: Path, noise: OutlineNoise, config: dict, seed: int = 0) -> pd.DataFrame:
    """Per exam the segmentation's Dice (its evaluation's JSON) beside one perturbed outline's, on the same exams.

    The perturbed outline's Dice is scored on the pCR crop grid: what the kinetic features are read on.
    """
    rows = pd.read_csv(manifest).set_index("patient_id")
    scored = [c for c in json.loads(evaluation.read_text(encoding="utf-8"))["per_case"] if c["found"]]
    spacing = float(config["spacing"][0])
    records = []
    for case in tqdm(scored, desc="calibrating outline noise"):
        row = rows.loc[case["patient_id"]]
        phases = {p: read_image(manifest.parent / row[p], p) for p in ("pre", "post1", "post2")}
        truth = prepare_case(phases, read_image(manifest.parent / row["mask"], "mask"), config).mask
        rng = np.random.default_rng([seed, len(records)])
        records.append({"patient_id": case["patient_id"], "segmentation": case["dice"],
                        "perturbed": dice(perturb_outline(truth, spacing, noise, rng), truth)})
    return pd.DataFrame(records)


def refit(weights: Path, manifest: Path, out: Path, version: str, noise: OutlineNoise, draws: int, seed: int) -> dict:
    """The card's model with its kinetic-feature term refitted on perturbed outlines, written to ``out``."""
    model, card = load_model(weights, build_model, expected_task=TASK)
    model.eval()
    if not card["architecture"].get("radiomics"):
        raise SystemExit(f"{weights}: this model has no kinetic-feature term to refit")
    encoder = ClinicalEncoder.from_dict(card["preprocessing"]["clinical_encoder"], BREAST_SCHEMA)
    cohort = load_cohort(manifest, card["architecture"], encoder=encoder)
    spacing = float(card["architecture"]["spacing"][0])
    logit_offset = float(card["preprocessing"].get("logit_offset", 0.0))
    device = torch.device("cpu")
    offsets, features = {}, {}
    for split in ("train", "val"):
        rows = cohort.rows(split)
        offsets[split] = logit_without_kinetics(model, cohort, rows, device)
        features[split] = perturbed_features(cohort, rows, draws, noise, spacing, seed + (split == "val"))
    before = outline_report(model, cohort, offsets, features, logit_offset)
    old = {"weight": model.radiomics_head.weight.detach().numpy()[0].round(4).tolist(),
           "bias": round(float(model.radiomics_head.bias.detach()), 4)}
    refit_kinetic_term(model, offsets["train"], features["train"], cohort.labels[cohort.rows("train")])
    after = outline_report(model, cohort, offsets, features, logit_offset)
    val_probs = draw_probabilities(model, offsets["val"], features["val"], logit_offset).mean(axis=1)
    threshold = choose_threshold(cohort, val_probs)
    record = {
        "what": "the kinetic-feature term (weights, bias) refitted on perturbed tumour outlines; every other "
                "parameter, the standardisation statistics and the clinical encoder are the base model's",
        "base": {"version": card["version"], "sha256": card["sha256"], "kinetic_term": old},
        "noise": asdict(noise), "draws_per_exam": draws, "seed": seed,
        "kinetic_term": {"weight": model.radiomics_head.weight.detach().numpy()[0].round(4).tolist(),
                         "bias": round(float(model.radiomics_head.bias.detach()), 4)},
        "before": before, "after": after,
        "threshold_rule": "max Youden J on the val rows' mean probability over their perturbed outlines",
    }
    card = {k: v for k, v in card.items() if k not in ("card_format", "responseai_version", "created",
                                                     "weights_file", "sha256", "n_parameters")}
    card["version"] = version
    card["threshold"] = threshold
    card["threshold_rule"] = record["threshold_rule"]
    val_labels = cohort.labels[cohort.rows("val")]
    val_exact = draw_probabilities(model, offsets["val"], cohort.radiomics[cohort.rows("val")][:, None], logit_offset)
    card["metrics"] = {"val": binary_report(val_labels, val_exact[:, 0], threshold),
                       "val_perturbed_outlines": binary_report(val_labels, val_probs, threshold)}
    card["training"] = {**card["training"], "outline_refit": record}
    save_model(model, card, out)
    log.info("kinetic term refitted: before %s after %s; threshold %.3f -> %s", before["val"], after["val"],
             threshold, out)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, required=True, help="the pCR model to start from (.safetensors)")
    parser.add_argument("--manifest", type=Path, required=True, help="its training manifest (train / val rows)")
    parser.add_argument("--out", type=Path, help="where the refitted weights + card go")
    parser.add_argument("--version", help="the new card's version")
    parser.add_argument("--draws", type=int, default=8, help="perturbed outlines per exam")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--calibrate", type=Path, nargs=2, metavar=("DEV_MANIFEST", "SEGMENTATION_JSON"),
                        help="print the quantiles of the segmentation's Dice and of a perturbed outline's on a "
                             "development set, and stop")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    noise = OutlineNoise()
    if args.calibrate:
        config = read_card(args.weights, expected_task=TASK)["architecture"]
        table = calibrate(*args.calibrate, noise, config)
        quantiles = [0.1, 0.25, 0.5, 0.75, 0.9]
        log.info("Dice quantiles %s\nsegmentation %s\nperturbed    %s", quantiles,
                 table["segmentation"].quantile(quantiles).round(3).tolist(),
                 table["perturbed"].quantile(quantiles).round(3).tolist())
        return 0
    if args.out is None or not args.version:
        parser.error("--out and --version are needed to write a model")
    refit(args.weights, args.manifest, args.out, args.version, noise, args.draws, args.seed)
    return 0
