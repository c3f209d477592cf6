"""The shipped pCR model end to end: on the segmentation's own masks against the reference masks.

The pCR evaluation (``responseai evaluate breast pcr``) scores the models on the phantom's reference
masks; a user gets the segmentation's mask. This runs :func:`responseai.breast.inference.run_case` —
what the Slicer module, ``responseai predict breast`` and the batch run — on every exam of one split
twice: with the reference mask as the user's mask, and with no mask (the shipped segmentation finds
it). It reports the AUC of both with bootstrap CIs, their paired difference, and the median share of
the attention map inside the **reference** tumour for both (attention that follows a wrong mask
lands outside the tumour). An exam the segmentation finds no tumour in gets no pCR number from the
product; it is counted and left out of the automatic column's AUC.

The summary also says how far the automatic mask moves each patient's probability from the reference
mask's (mean absolute and mean signed change): what a user's number owes to the outline; and, when it segments
the exams itself, whether the product's segmentation cautions told the user about the exams moved most (``any_caution``).

``--automatic-masks manifest-NAME.csv`` reads the segmentation's masks saved by ``responseai evaluate
breast segmentation … --save-masks NAME`` instead of segmenting again (same masks, a fraction of the
time), so that two pCR models (``--pcr-weights``) are compared on identical outlines.

Usage: python Testing/Scripts/pcr_end_to_end.py MANIFEST.csv [--split external] [--out FILE.json]
           [--automatic-masks MANIFEST-NAME.csv] [--pcr-weights W.safetensors]
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from tqdm import tqdm

from responseai.breast.constants import CAUTION_KEYS, FORM_SCHEMA
from responseai.breast.inference import load_case, run_case
from responseai.errors import EmptyMaskError
from responseai.explain import mass_in_mask
from responseai.io import read_image
from responseai.metrics import bootstrap

log = logging.getLogger("pcr_end_to_end")


def _cell(value: object) -> object:
    return None if isinstance(value, float) and np.isnan(value) else value


def score_exam(manifest: Path, row: pd.Series, automatic: Path | None = None, pcr_weights: Path | None = None) -> dict:
    """pCR probability and attention in the reference tumour, with the reference mask and with the model's.

    ``automatic``: the model's mask for this exam, saved by the segmentation evaluation (None: segment now).
    """
    phases = {p: str(manifest.parent / row[p]) for p in ("pre", "post1", "post2") if isinstance(row.get(p), str)}
    clinical = {name: _cell(row.get(name)) for name in FORM_SCHEMA}
    reference = manifest.parent / row["mask"]
    truth = read_image(reference, "mask").array
    record = {"patient_id": row["patient_id"], "pcr": int(row["pcr"])}
    for source, mask in (("reference", reference), ("automatic", automatic)):
        try:  # an empty saved mask (nothing found) is refused by load_case, as the product refuses it
            outputs = run_case(load_case(str(row["patient_id"]), phases, clinical, mask),
                               pcr_weights=pcr_weights, progress=lambda *_: None)
        except EmptyMaskError:
            record |= {f"{source}_probability": float("nan"), f"{source}_attention_in_tumour": float("nan")}
            continue
        record |= {f"{source}_probability": outputs.result.probability,
                   f"{source}_attention_in_tumour": mass_in_mask(outputs.result.attention.array, truth)}
        if source == "automatic":  # the outline's size, and what the product told the user about it
            found = outputs.mask.array > 0
            record |= {"automatic_volume_ml": outputs.findings["tumour_volume_ml"],
                       "automatic_dice": float(2 * np.sum(found & (truth > 0)) / max(found.sum() + (truth > 0).sum(), 1)),
                       "automatic_grown_from_ml": outputs.findings.get("outline_grown_from_ml"),
                       "automatic_segmentation_probability": outputs.findings.get("segmentation_probability"),
                       "automatic_score_margin": (outputs.findings.get("runner_up_candidate") or {}).get("score_margin"),
                       "automatic_cautions": None if mask is not None  # a saved mask is read as the user's: not known
                       else [key for key in CAUTION_KEYS if outputs.findings.get(key)]}
    return record


def summary(table: pd.DataFrame, n_boot: int = 1000) -> dict:
    """AUCs with CIs on the exams both columns have, the paired difference, attention medians."""
    both = table.dropna(subset=["reference_probability", "automatic_probability"])
    y = both["pcr"].to_numpy()
    stats = bootstrap(lambda t, r, a: {"auc_reference_mask": roc_auc_score(t, r),
                                       "auc_automatic_mask": roc_auc_score(t, a),
                                       "auc_automatic_minus_reference": roc_auc_score(t, a) - roc_auc_score(t, r)},
                      (y, both["reference_probability"].to_numpy(), both["automatic_probability"].to_numpy()), n_boot)
    change = both["automatic_probability"] - both["reference_probability"]
    cautions = both.get("automatic_cautions")  # absent or None where the masks were read from files
    told = cautions.map(bool) if cautions is not None and cautions.notna().all() and len(both) else None
    return {**({} if told is None else caution_summary(told, change.abs())),"n_exams": len(table), "n_pcr": int(table["pcr"].sum()),
            "n_without_automatic_mask": int(table["automatic_probability"].isna().sum()), **stats,
            "probability_change_mean_abs": float(change.abs().mean()),
            "probability_change_mean": float(change.mean()),
            "attention_in_tumour_median": {s: float(table[f"{s}_attention_in_tumour"].median())
                                           for s in ("reference", "automatic")}}


def caution_summary(flagged: pd.Series, moved: pd.Series, far: float = 0.1) -> dict:
    """Whether the product's segmentation cautions (any of ``CAUTION_KEYS``) tell the user about the exams whose
    probability the automatic mask moved: mean |Δp| with and without a caution, the share of far moves told."""
    return {"any_caution": {
        "n_flagged": int(flagged.sum()), "share_flagged": float(flagged.mean()),
        "mean_abs_change_flagged": float(moved[flagged].mean()) if flagged.any() else None,
        "mean_abs_change_unflagged": float(moved[~flagged].mean()) if (~flagged).any() else None,
        f"n_moved_over_{far:g}": int((moved > far).sum()),
        f"share_of_moves_over_{far:g}_flagged": float(flagged[moved > far].mean()) if (moved > far).any() else None}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest", type=Path)
    parser.add_argument("--split", default="external")
    parser.add_argument("--out", type=Path, help="write the per-exam table and the summary here (JSON)")
    parser.add_argument("--automatic-masks", type=Path, help="the segmentation's saved masks (manifest-NAME.csv)")
    parser.add_argument("--pcr-weights", type=Path, help="pCR weights (default: shipped)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    frame = pd.read_csv(args.manifest)
    frame = frame[frame["split"] == args.split]
    saved = {}
    if args.automatic_masks is not None:
        masks = pd.read_csv(args.automatic_masks).set_index("patient_id")["mask"]
        saved = {pid: args.automatic_masks.parent / path for pid, path in masks.items()}
    table = pd.DataFrame([score_exam(args.manifest, row, saved.get(row["patient_id"]), args.pcr_weights)
                          for _, row in tqdm(frame.iterrows(), total=len(frame), desc="pCR end to end")])
    result = {"manifest": str(args.manifest), "split": args.split, "pcr_weights": str(args.pcr_weights or "shipped"),
              "automatic_masks": str(args.automatic_masks or "segmented now"), **summary(table)}
    log.info("%s", json.dumps(result, indent=1))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({**result, "per_exam": table.to_dict("records")}, indent=1) + "\n",
                            encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
