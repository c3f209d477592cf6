"""External evaluation of the tumour segmentation: Dice, HD95, tumour found, false positives, bootstrap CIs.

Runs exactly what a user runs (the two halves of :func:`responseai.breast.segmentation.inference.segment_exam`,
on the original phase files and grid) and compares with the phantom's reference mask; a miss is
attributed to a step from the same network output. Where the cohort
has anatomy maps (``anatomy`` column: both phantoms), a mask lying mostly on the heart, great
vessels, internal mammary vessels, an axillary node or the benign lesion counts as a
false positive on a distractor. Works on either phantom (the main one's external site, or the
independent variant, which is never trained on).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from monai.metrics import compute_hausdorff_distance
from scipy import ndimage
from tqdm import tqdm

from responseai.breast.constants import MANIFEST_SCHEMA, REQUIRED_PHASES
from responseai.breast.preprocess import check_phases
from responseai.breast.segmentation.candidates import MIN_CANDIDATE_VOXELS, MIN_INSIDE_BREAST, inside_fraction
from responseai.breast.segmentation.extent import extent_fits, extent_ratio, yardstick
from responseai.breast.segmentation.inference import (
    DEFAULT,
    CanonicalSegmentation,
    exam_from_canonical,
    segment_canonical,
    segment_tumour,
)
from responseai.errors import EmptyMaskError
from responseai.image import Image
from responseai.io import read_image, resample_to, write_image
from responseai.manifest import read_manifest
from responseai.metrics import bootstrap, dice
from responseai.weights import card_path

log = logging.getLogger(__name__)


def _as_batch(mask: np.ndarray) -> torch.Tensor:
    return torch.from_numpy((mask > 0)[None, None].astype(np.float32))


def _hd95_mm(prediction: np.ndarray, truth: np.ndarray, spacing_zyx: tuple[float, float, float]) -> float:
    """95th-percentile symmetric surface distance in millimetres (anisotropic voxels)."""
    return float(compute_hausdorff_distance(_as_batch(prediction), _as_batch(truth), percentile=95,
                                            spacing=list(spacing_zyx))[0, 0])


def _warn_if_training_seed(manifest: Path, weights: Path) -> None:
    """Phantom cohorts: evaluating on the training seed measures memorisation, not generalisation."""
    try:
        trained_on = json.loads(card_path(weights).read_text(encoding="utf-8"))["training_data"].get("cohort_seed")
        evaluated = json.loads((manifest.parent / "cohort.json").read_text(encoding="utf-8"))["seed"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    if trained_on is not None and int(trained_on) == int(evaluated):
        log.warning("%s is phantom seed %s, the seed the model was trained on: use another seed", manifest, evaluated)


def evaluate_segmentation(manifest_csv: str | Path, weights_path: str | Path = DEFAULT, split: str = "external",
                          n_boot: int = 1000, out: str | Path | None = None, save_masks: str | None = None) -> dict:
    """Per-case Dice / HD95 on ``split`` rows, their means with 95 % bootstrap CIs.

    A case where the model finds no tumour scores Dice 0 (and no HD95) instead of being dropped:
    dropping failures would flatter the mean. An exam whose *reference* mask is empty has nothing to score
    (Dice is undefined) and is left out, by name (``left_out_empty_reference``). With ``out``, writes ``segmentation.md`` and
    ``segmentation.json`` there; otherwise nothing is written. With ``save_masks`` (a name), the
    model's masks go beside the cohort (:func:`write_segmented_manifest`) so that the pCR evaluation
    can be run end to end, on the masks a user would get instead of the reference ones.
    """
    manifest = Path(manifest_csv)
    weights = Path(weights_path)
    rows = read_manifest(manifest, MANIFEST_SCHEMA, require=(*REQUIRED_PHASES, "split", "mask"), need_splits=(split,)).rows(split)
    _warn_if_training_seed(manifest, weights)
    per_case, seconds, predicted, no_reference = [], [], {}, []
    for _, row in tqdm(rows.iterrows(), total=len(rows), desc=f"segmenting {split}"):
        truth = read_image(manifest.parent / row["mask"], "mask")
        if not truth.array.any():  # no tumour to score against (a phantom's field of view missed it): no Dice
            log.warning("%s: the reference mask is empty; the exam is left out of the evaluation", row["patient_id"])
            no_reference.append(str(row["patient_id"]))
            continue
        phases = {p: read_image(manifest.parent / row[p], p) for p in ("pre", "post1", "post2") if isinstance(row.get(p), str)}
        anatomy_image = read_image(manifest.parent / row["anatomy"], "anatomy") if isinstance(row.get("anatomy"), str) else None
        anatomy = anatomy_image.array if anatomy_image is not None else None
        start = time.perf_counter()
        aligned = check_phases(phases)
        seg = segment_canonical(aligned, weights)
        try:
            exam = exam_from_canonical(aligned, seg, row)  # the row's tumour size, as the form's in run_case
            mask, runner_up, close_call, by_extent = exam.mask.array, exam.runner_up, exam.close_call, exam.chosen_by_extent
            cut, grown = exam.cut_from_ml is not None, exam.grown_from_ml is not None
            side_named, set_aside = exam.named_side is not None, exam.set_aside_other_side
            other_first = exam.other_side_first
        except EmptyMaskError:
            mask, runner_up, close_call, by_extent = np.zeros_like(truth.array, dtype=np.uint8), None, False, False
            cut = grown = side_named = other_first = False
            set_aside = 0
        seconds.append(time.perf_counter() - start)
        if save_masks and mask.any():
            predicted[row["patient_id"]] = truth.with_array(mask)
        found = bool((mask.astype(bool) & (truth.array > 0)).any())
        runner_up_hit = runner_up is not None and bool((runner_up.array.astype(bool) & (truth.array > 0)).any())
        volume_ml = truth.volume_ml(mask)
        per_case.append({"patient_id": row["patient_id"], "site": row["site"], "found": found,
                         "false_positive_on_distractor": on_distractor(mask, anatomy),
                         "mask_on": structure_under(mask, anatomy),
                         "miss_reason": None if found else why_missed(seg, truth),
                         # a miss the user can mend with one click: the tumour is the runner-up offered
                         "runner_up_found": not found and runner_up_hit,
                         "close_call": close_call,  # the user was told to compare the runner-up
                         # the clinical size overruled the ranker, whose first choice is then the runner-up
                         "chosen_by_extent": by_extent, "ranker_first_found": runner_up_hit if by_extent else found,
                         "cut_to_size": cut,  # the chosen outline was cut to the clinical size's piece
                         "grown_to_size": grown,  # the chosen outline was grown over the clinical size's tumour
                         "side_named": side_named,  # the manifest's laterality kept the search to one breast
                         "set_aside_other_side": set_aside,  # candidates in the other breast left out of the choice
                         # the ranker's first choice of both breasts lay in the other one: the user was cautioned
                         "other_side_first": other_first,
                         "breast_region_on_heart_ml": region_on_heart_ml(seg, anatomy_image),
                         "dice": dice(mask, truth.array) if mask.any() else 0.0,
                         "hd95_mm": _hd95_mm(mask, truth.array, truth.spacing[::-1]) if found else float("nan"),
                         "volume_ml": volume_ml,
                         "reference_volume_ml": truth.volume_ml(),
                         "extent_ratio": extent_ratio(volume_ml, row),
                         "extent_flagged": mask_flagged(volume_ml, row),
                         "extent_yardstick": yardstick_kind(row),
                         "seconds": seconds[-1]})
    table = pd.DataFrame(per_case)
    stats = bootstrap(lambda d, h, f, p: {"dice": float(np.mean(d)), "hd95_mm": _mean_finite(h),
                                          "found_rate": float(np.mean(f)), "distractor_fp_rate": float(np.mean(p))},
                      (table["dice"].to_numpy(), table["hd95_mm"].to_numpy(), table["found"].to_numpy(float),
                       table["false_positive_on_distractor"].to_numpy(float)), n_boot)
    result = {"split": split, "n_cases": len(table), "n_not_found": int((~table["found"]).sum()),
              "left_out_empty_reference": no_reference,
              "breast_region_on_heart_ml_mean": _mean_finite(table["breast_region_on_heart_ml"].to_numpy(float)),
              "manifest": str(manifest), "weights": str(weights), "metrics": stats,
              "dice_min": float(table["dice"].min()), "dice_median": float(table["dice"].median()),
              "seconds_per_case_mean": float(np.mean(seconds)),
              "seconds_per_case_median": float(np.median(seconds)), "misses": miss_summary(table),
              "volume_errors": volume_errors(table),
              "extent_caution": extent_caution_summary(table),
              "close_calls": close_call_summary(table),
              "chosen_by_extent": extent_choice_summary(table),
              "cut_to_size": cut_summary(table),
              "grown_to_size": cut_summary(table, "grown_to_size", OUTLINE_CHANGES["grown_to_size"][0]),
              "side": side_summary(table),
              "per_case": per_case}
    if save_masks:
        result["segmented_manifest"] = str(write_segmented_manifest(manifest, split, predicted, save_masks))
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "segmentation.md").write_text(markdown(result), encoding="utf-8")
        (out / "segmentation.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


def write_segmented_manifest(manifest: Path, split: str, masks: Mapping[str, Image], name: str) -> Path:
    """``manifest-<name>.csv`` beside ``manifest``: its ``split`` rows with ``mask`` pointing at the model's
    masks, written to ``<name>/<patient_id>.nrrd`` (the other rows as they were).

    Written beside the cohort because the cohort's ``truth.csv`` and ``cohort.json`` must stay next to
    any manifest of it. A ``split`` row the model found nothing in has no mask a user could run the
    pCR model on: it is left out, and the log says how many.
    """
    if not plain_name(name):
        raise ValueError(f"masks are saved under a plain name (letters, digits, - and _), got {name!r}")
    frame = pd.read_csv(manifest)
    folder = manifest.parent / name
    folder.mkdir(exist_ok=True)
    for patient, image in masks.items():
        write_image(image, folder / f"{patient}.nrrd")
    evaluated = frame["split"] == split
    kept = ~evaluated | frame["patient_id"].isin(list(masks))
    frame.loc[evaluated & kept, "mask"] = [f"{name}/{p}.nrrd" for p in frame.loc[evaluated & kept, "patient_id"]]
    if (~kept).any():
        log.warning("%d %s exam(s) without a segmented tumour left out of the segmented manifest", int((~kept).sum()), split)
    path = manifest.parent / f"manifest-{name}.csv"
    frame[kept].to_csv(path, index=False)
    return path


def plain_name(name: str) -> bool:
    """A folder name that cannot leave the cohort folder (no separators, no dots)."""
    return name.replace("-", "").replace("_", "").isalnum()


def _mean_finite(values: np.ndarray) -> float:
    """Mean over the cases where the metric exists (HD95 needs a found tumour); NaN when none does."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


DISTRACTORS = (3, 4, 5, 6, 7)  # anatomy labels: heart, great vessels, internal mammary vessels, nodes, benign lesion
HEART_AND_VESSELS = (3, 4)
#: the phantoms' anatomy codes (docs/phantom-cohorts.md; the variant and the alt phantom use the same ones)
STRUCTURES = {0: "air", 1: "breast tissue", 2: "breast tissue", 3: "heart", 4: "great vessels",
              5: "internal mammary vessels", 6: "axillary node", 7: "benign lesion", 8: "lung", 9: "chest wall",
              10: "other body tissue"}


def structure_under(mask: np.ndarray, anatomy: np.ndarray | None) -> str | None:
    """The anatomy most of a predicted mask lies on (a tumour's own voxels carry its breast's label)."""
    if anatomy is None or not mask.any():
        return None
    return STRUCTURES.get(int(np.bincount(anatomy[mask > 0].ravel()).argmax()), "unknown")


def why_missed(seg: CanonicalSegmentation, truth: Image) -> str:
    """Which step lost a tumour the model did not return, from the numbers its candidate choice used."""
    reference = resample_to(truth, seg.grid, is_label=True).array > 0
    return miss_reason(seg.probabilities[-1], seg.region, seg.threshold, reference, seg.grid.spacing)


def miss_reason(tumour_probability: np.ndarray, region: np.ndarray | None, threshold: float,
                reference: np.ndarray, spacing_xyz: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> str:
    """The candidate rule's verdict on the reference tumour (arrays on one grid).

    "not detected": no voxel of it reaches the threshold; "only specks": it does, but only in
    components too small to be candidates; "outside the breast region": its component is mostly
    surrounded by something other than the breasts the network found; "another candidate chosen": it was a candidate and lost
    to one the candidate choice ranked higher (the selection rule, not the detector, failed).
    """
    labels, _ = ndimage.label(tumour_probability >= threshold)
    hits = [h for h in np.unique(labels[reference]) if h]
    if not hits:
        return "not detected"
    sizes = np.bincount(labels.ravel())
    if sizes[hits].max() < MIN_CANDIDATE_VOXELS:
        return "only specks"
    measured = np.isin(np.arange(1, len(sizes)), hits) & (sizes[1:] >= MIN_CANDIDATE_VOXELS)
    if np.nanmax(inside_fraction(labels, region, spacing_xyz, measured)[measured]) < MIN_INSIDE_BREAST:
        return "outside the breast region"
    return "another candidate chosen"


def region_on_heart_ml(seg: CanonicalSegmentation, anatomy: Image | None) -> float:
    """Millilitres of the breast region lying on the heart or great vessels (NaN without an anatomy map or region).

    The breast region feeds the breast volume, the BPE index and the candidate rule; heart inside it
    is what lets the heart be chosen as the tumour on an exam where the two touch.
    """
    if anatomy is None or seg.region is None:
        return float("nan")
    on_grid = resample_to(anatomy, seg.grid, is_label=True).array
    return seg.grid.volume_ml(seg.region & np.isin(on_grid, HEART_AND_VESSELS))


def miss_summary(table: pd.DataFrame) -> dict:
    """Counts of the misses by reason, and what the returned mask lay on instead."""
    missed = table[~table["found"]]
    return {"reasons": {str(k): int(v) for k, v in missed["miss_reason"].value_counts().items()},
            "mask_on": {str(k): int(v) for k, v in missed["mask_on"].fillna("no mask").value_counts().items()},
            "runner_up_is_the_tumour": int(missed["runner_up_found"].sum()) if "runner_up_found" in missed else 0}


def close_call_summary(table: pd.DataFrame) -> dict:
    """How the close-call caution fared: exams flagged, wrong choices among them, wrong choices flagged.

    A wrong choice is an exam whose tumour was not found although the runner-up (or another candidate)
    existed; the caution is worth its alarms when it catches most of those and few right ones.
    """
    flagged = table["close_call"].astype(bool)
    wrong = ~table["found"].astype(bool) & (table["miss_reason"] == "another candidate chosen")
    return {"flagged": int(flagged.sum()), "flagged_wrong": int((flagged & wrong).sum()),
            "wrong_choices": int(wrong.sum()), "flagged_right": int((flagged & table["found"]).sum())}


def extent_choice_summary(table: pd.DataFrame) -> dict:
    """Exams where the clinical size overruled the ranker: how many, and whether the swap found or lost a tumour."""
    swapped = table["chosen_by_extent"].astype(bool)
    found, first = table["found"].astype(bool), table["ranker_first_found"].astype(bool)
    return {"swapped": int(swapped.sum()), "tumours_gained": int((swapped & found & ~first).sum()),
            "tumours_lost": int((swapped & ~found & first).sum())}


def cut_summary(table: pd.DataFrame, column: str = "cut_to_size", key: str = "cut") -> dict:
    """Exams whose chosen outline was cut to the clinical size's piece (``column`` ``grown_to_size``, ``key``
    ``grown``: grown over the clinical size's tumour): how many, and in how many the outline holds the tumour (a
    cut or growth of the wrong structure, or a cut that left the tumour out, shows as not found)."""
    changed = table[column].astype(bool)
    return {key: int(changed.sum()), "found": int((changed & table["found"].astype(bool)).sum())}


def side_summary(table: pd.DataFrame) -> dict:
    """Exams whose manifest named the tumour's breast, and those where candidates in the other breast were set
    aside (the choice could only differ from a search of both breasts there), with how many of those hold the
    tumour."""
    aside = table["set_aside_other_side"] > 0
    first = table["other_side_first"].astype(bool)
    return {"named": int(table["side_named"].sum()), "set_aside": int(aside.sum()),
            "set_aside_found": int((aside & table["found"].astype(bool)).sum()),
            "other_side_first": int(first.sum()), "other_side_first_found": int((first & table["found"].astype(bool)).sum())}


def volume_errors(table: pd.DataFrame) -> dict:
    """Found tumours whose mask is over twice, or under half, the reference volume.

    Why beside Dice: a low Dice alone does not say whether the outline spilled into enhancing
    parenchyma (the mask too large: a wrong volume and a wrong pCR crop) or stopped short of the
    tumour's margin; a radiologist correcting the mask needs to know which to look for.
    """
    found = table[table["found"]]
    ratio = found["volume_ml"] / found["reference_volume_ml"].clip(lower=1e-9)
    return {"n_found": int(len(found)), "over_2x": int((ratio > 2).sum()), "under_half": int((ratio < 0.5).sum()),
            "median_ratio": float(ratio.median()) if len(found) else float("nan")}


def mask_flagged(volume_ml: float, row: Mapping) -> bool | None:
    """Whether the caution fires for this mask (None: no clinical size in the manifest)."""
    fits = extent_fits(volume_ml, row)
    return None if fits is None else not fits


def yardstick_kind(row: Mapping) -> str | None:
    """"ellipsoid" (three diameters in the manifest), "sphere" (the largest only) or None."""
    stick = yardstick(row)
    return None if stick is None else stick.kind


def extent_caution_summary(table: pd.DataFrame) -> dict:
    """How often the mask-extent caution (:mod:`.extent`) fires, on masks that need it and on those that do not.

    "Needs checking": the tumour was missed, the mask lies on a distractor, or it is over twice or under
    half the reference volume. Counted over the exams whose manifest gives a clinical size; the
    yardsticks used (sphere of the largest diameter, ellipsoid of three) are counted too.
    """
    checked = table[table["extent_flagged"].notna()] if "extent_flagged" in table else table.iloc[0:0]
    if checked.empty:
        return {"n_checked": 0}
    ratio = checked["volume_ml"] / checked["reference_volume_ml"].clip(lower=1e-9)
    needs = ~checked["found"] | checked["false_positive_on_distractor"] | (ratio > 2) | (ratio < 0.5)
    flagged = checked["extent_flagged"].astype(bool)
    return {"n_checked": int(len(checked)), "yardsticks": checked["extent_yardstick"].value_counts().to_dict(),
            "flagged": int(flagged.sum()), "needs_checking": int(needs.sum()),
            "flagged_of_needs_checking": int((flagged & needs).sum()), "flagged_of_fine": int((flagged & ~needs).sum())}


def on_distractor(mask: np.ndarray, anatomy: np.ndarray | None) -> bool:
    """The predicted tumour lies mostly (≥ 50 %) on enhancing anatomy that is not the tumour."""
    if anatomy is None or not mask.any():
        return False
    return bool(np.isin(anatomy[mask > 0], DISTRACTORS).mean() >= 0.5)


def time_inference(weights_path: str | Path = DEFAULT, n_cases: int = 10, seed: int = 3, threads: int = 2) -> dict:
    """Wall-clock seconds of :func:`segment_tumour` per phantom case (a benchmark, not a test).

    The first call (model load and warm-up) is reported separately; then the median, p95 and
    mean of ``n_cases`` calls on freshly generated cases of every site (timings on a shared
    machine vary, so the docs quote them with the machine and load).
    """
    from responseai.breast.phantom import generate_case

    torch.set_num_threads(threads)
    cases = [generate_case(seed, i).phases for i in range(n_cases + 1)]
    start = time.perf_counter()
    segment_tumour(cases[0], weights_path)
    first = time.perf_counter() - start
    seconds = []
    for phases in cases[1:]:
        start = time.perf_counter()
        segment_tumour(phases, weights_path)
        seconds.append(time.perf_counter() - start)
    return {"threads": threads, "n_cases": n_cases, "first_call_s": first,
            "median_s": float(np.median(seconds)), "p95_s": float(np.quantile(seconds, 0.95)),
            "mean_s": float(np.mean(seconds))}


def markdown(result: dict) -> str:
    """A one-row Markdown table of the result (what docs/segmentation.md quotes)."""
    m = result["metrics"]
    cell = lambda k, f: f"{m[k]['value']:{f}} ({m[k]['ci_low']:{f}}–{m[k]['ci_high']:{f}})"  # noqa: E731
    return ("| cohort | split | n | Dice (95 % CI) | HD95 mm (95 % CI) | tumour found | mask on heart / vessels / "
            "nodes / benign |\n| --- | --- | --- | --- | --- | --- | --- |\n"
            f"| {Path(result['manifest']).parent.name} | {result['split']} | {result['n_cases']} | {cell('dice', '.3f')} "
            f"| {cell('hd95_mm', '.2f')} | {cell('found_rate', '.0%')} | {cell('distractor_fp_rate', '.0%')} |\n"
            + _misses_line(result.get("misses")) + _close_call_line(result.get("close_calls"))
            + _extent_choice_line(result.get("chosen_by_extent"))
            + _outline_change_line(result, "cut_to_size") + _outline_change_line(result, "grown_to_size")
            + _side_line(result.get("side"))
            + _volume_line(result.get("volume_errors"))
            + _extent_line(result.get("extent_caution"))
            + _region_line(result.get("breast_region_on_heart_ml_mean"))
            + _left_out_line(result.get("left_out_empty_reference")))


def _side_line(side: dict | None) -> str:
    """One sentence on the search kept to the breast the manifest names (empty when none was named)."""
    if not side or not side["named"]:
        return ""
    return (f"\nThe manifest named the tumour's breast in {side['named']} exams; candidates in the other breast were "
            f"set aside in {side['set_aside']} of them, and the outline held the tumour in {side['set_aside_found']} "
            f"of those. The model's first choice of both breasts lay in the other breast (the user is cautioned to "
            f"check the form's side) in {side.get('other_side_first', 0)}, of which the outline held the tumour in "
            f"{side.get('other_side_first_found', 0)}.\n")


def _volume_line(errors: dict | None) -> str:
    """How many found tumours were outlined at over twice or under half their volume."""
    if not errors or not errors["n_found"]:
        return ""
    return (f"\nVolume of the found tumours' masks against the reference: median ratio {errors['median_ratio']:.2f}; "
            f"over twice the reference in {errors['over_2x']} of {errors['n_found']}, under half in {errors['under_half']}.\n")


def _extent_line(summary: dict | None) -> str:
    """How the mask-extent caution did: flagged among the masks that needed checking, and among the rest."""
    if not summary or not summary.get("n_checked"):
        return ""
    fine = summary["n_checked"] - summary["needs_checking"]
    sticks = ", ".join(f"{n} against the {kind}" for kind, n in summary["yardsticks"].items())
    return (f"\nMask-extent caution (mask volume outside the expected range of the clinical size's yardstick: {sticks}): "
            f"flagged {summary['flagged_of_needs_checking']} of the {summary['needs_checking']} masks that "
            f"needed checking (missed, on a distractor, over 2× or under ½ the tumour), {summary['flagged_of_fine']} of "
            f"the {fine} others.\n")


def _left_out_line(patients: list[str] | None) -> str:
    """The exams left out for an empty reference mask (empty when none was)."""
    if not patients:
        return ""
    return f"\nLeft out (empty reference mask, nothing to score): {', '.join(patients)}.\n"


def _region_line(heart_ml: float | None) -> str:
    """The breast region's mean volume on the heart and great vessels (empty without anatomy maps)."""
    if heart_ml is None or not np.isfinite(heart_ml):
        return ""
    return f"\nBreast region on the heart / great vessels: {heart_ml:.1f} ml per exam (mean).\n"


def _misses_line(misses: dict | None) -> str:
    """One sentence on why tumours were missed (empty when none were)."""
    if not misses or not misses["reasons"]:
        return ""
    listing = lambda counts: ", ".join(f"{n} {what}" for what, n in counts.items())  # noqa: E731
    mended = misses.get("runner_up_is_the_tumour", 0)
    return (f"\nMissed: {listing(misses['reasons'])}; the returned mask lay on: {listing(misses['mask_on'])}; "
            f"the runner-up candidate offered was the tumour in {mended} of them.\n")


def _close_call_line(calls: dict | None) -> str:
    """One sentence on the close-call caution (empty for results without it or when nothing was flagged)."""
    if not calls or not (calls["flagged"] or calls["wrong_choices"]):
        return ""
    return (f"\nClose calls flagged: {calls['flagged']} exams ({calls['flagged_right']} with the tumour outlined); "
            f"{calls['flagged_wrong']} of the {calls['wrong_choices']} wrong choices were flagged.\n")


def _extent_choice_line(swaps: dict | None) -> str:
    """One sentence on the choices the clinical size overruled (empty when none was)."""
    if not swaps or not swaps["swapped"]:
        return ""
    return (f"\nThe clinical size overruled the ranker in {swaps['swapped']} exams: {swaps['tumours_gained']} tumours "
            f"gained, {swaps['tumours_lost']} lost.\n")


#: the result's summaries of outlines reshaped to fit the clinical size: the count's key, and what was done
OUTLINE_CHANGES = {"cut_to_size": ("cut", "above the clinical size cut to the piece of that size"),
                   "grown_to_size": ("grown", "below the clinical size grown over the tumour of that size")}


def _outline_change_line(result: dict, column: str) -> str:
    """One sentence on the outlines reshaped as ``column`` (a key of OUTLINE_CHANGES) says, from the result's
    :func:`cut_summary` of it; empty when none was."""
    key, what = OUTLINE_CHANGES[column]
    summary = result.get(column)
    if not summary or not summary[key]:
        return ""
    return f"\nOutlines {what}: {summary[key]} exams, the tumour in {summary['found']} of them.\n"


def main(argv: list[str] | None = None) -> int:
    """``responseai evaluate breast segmentation`` entry point."""
    parser = argparse.ArgumentParser(prog="responseai evaluate breast segmentation", description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, help="cohort manifest.csv (not the training seed)")
    parser.add_argument("--weights", type=Path, default=DEFAULT)
    parser.add_argument("--split", default="external")
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--out", type=Path, help="folder for segmentation.md / segmentation.json")
    parser.add_argument("--bench", type=int, metavar="N", help="only time inference on N phantom cases")
    parser.add_argument("--save-masks", metavar="NAME", help="also write the model's masks to COHORT/NAME/ and "
                        "COHORT/manifest-NAME.csv (the manifest with them as masks: for an end-to-end pCR evaluation)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (0: torch's default; 1 is fastest on a shared, busy CPU)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.bench:
        log.info("inference time: %s", json.dumps(time_inference(args.weights, args.bench,
                                                                threads=args.threads or torch.get_num_threads())))
        return 0
    if args.manifest is None:
        parser.error("--manifest is required (unless --bench)")
    if args.save_masks is not None and not plain_name(args.save_masks):
        parser.error(f"--save-masks takes a plain name (letters, digits, - and _), got {args.save_masks!r}")
    result = evaluate_segmentation(args.manifest, args.weights, args.split, args.n_boot, args.out, args.save_masks)
    log.info("\n%s", markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
