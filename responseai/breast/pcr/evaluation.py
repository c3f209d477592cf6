"""External validation of the pCR ablations of seed 000 (one call, one table).

Ablations (all trained on the training cohort's ``train`` rows, thresholds from its ``val``
rows): single-stage unguided baseline, step 1, steps 1–2, steps 1–3. They are evaluated on
the ``external`` rows of a cohort generated with a *different seed*: AUC, sensitivity,
specificity, balanced accuracy, ECE (bootstrap 95 % CIs), reliability and decision curves,
attention-in-mask fraction and pointing-game rate (bootstrap CIs of the means), paired
bootstrap differences against the baseline, and — because the phantom plants a coil artefact
outside the tumour that tracks pCR on the training sites only — the rank correlation of each
model's probability with the artefact amplitude on the external site (where it carries no
information about pCR), which shows *why* a model generalises or not.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr
from tqdm import tqdm

from responseai.breast.constants import BREAST_SCHEMA, MANIFEST_SCHEMA, REQUIRED_PHASES
from responseai.breast.pcr.cohort import Cohort, load_cohort, predict_logits, probabilities
from responseai.breast.pcr.features import check_feature_definition
from responseai.breast.pcr.inference import ImageOnlyModel
from responseai.breast.pcr.model import build_model
from responseai.clinical import ClinicalEncoder, records_from_frame
from responseai.errors import ResponseAIError
from responseai.explain import mass_in_mask, pointing_game, upsample_to_crop
from responseai.manifest import read_manifest
from responseai.metrics import auc_metric, binary_report, bootstrap, net_benefit, reliability_curve, sensitivity_specificity
from responseai.weights import load_model

log = logging.getLogger(__name__)

ABLATIONS: dict[str, tuple[str, str]] = {  # label → (run folder, weights file)
    "single-stage (unguided)": ("single_stage", "breast_pcr.safetensors"),
    "step 1 (global)": ("stepwise", "breast_pcr_step1.safetensors"),
    "steps 1–2 (guided attention)": ("stepwise", "breast_pcr_step12.safetensors"),
    "steps 1–3 (stepwise, clinical)": ("stepwise", "breast_pcr_step123.safetensors"),
}
BASELINE, STEPWISE = "single-stage (unguided)", "steps 1–3 (stepwise, clinical)"
CLINICAL_ONLY = "clinical-only logistic regression (reference)"
SPEC_MARGIN = 0.05


@dataclass
class ModelOutputs:
    """Per-case outputs of one ablation on the test rows."""

    probs: np.ndarray
    attention_in_mask: np.ndarray
    pointing: np.ndarray
    gradcam_in_mask: np.ndarray
    gradcam_pointing: np.ndarray
    threshold: float
    has_attention: bool


def load_test_cohort(test_manifest: Path, config: dict, encoder: ClinicalEncoder) -> Cohort:
    """External rows of the test cohort, preprocessed once with the models' crop contract."""
    return load_cohort(test_manifest, config, splits=("external",), encoder=encoder)


def gradcam_maps(model: torch.nn.Module, cohort: Cohort, rows: np.ndarray) -> list[np.ndarray]:
    """Grad-CAM (MONAI) of the pCR logit on the encoder output, per case, on the crop grid."""
    from monai.visualize import GradCAM

    wrapper = ImageOnlyModel(model)
    cam = GradCAM(wrapper, target_layers="model.encoder")
    maps = []
    for i in rows:
        image = torch.from_numpy(cohort.images[i : i + 1]).requires_grad_(True)
        wrapper.clinical = torch.from_numpy(cohort.clinical[i : i + 1]) if model.config["clinical"] else None
        wrapper.radiomics = torch.from_numpy(cohort.radiomics[i : i + 1]) if model.config["radiomics"] else None
        maps.append(np.nan_to_num(cam(image, class_idx=0)[0, 0].detach().numpy()))
    return maps


def attention_in_masks(attention: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Per case, the fraction of the attention map (feature grid, upsampled to the crop) inside the tumour mask."""
    return np.array([mass_in_mask(upsample_to_crop(a, m.shape), m) for a, m in zip(attention, masks)])


def run_ablation(weights: Path, cohort: Cohort) -> ModelOutputs:
    """Probabilities (with the card's prior offset), attention and Grad-CAM agreement per case."""
    model, card = load_model(weights, build_model, expected_task="pcr")
    check_feature_definition(card)
    rows = np.arange(len(cohort.frame))
    logits, attention = predict_logits(model, cohort, rows, torch.device("cpu"))
    crop = cohort.images.shape[2:]
    att_crop = [upsample_to_crop(a, crop) for a in attention]
    cams = gradcam_maps(model, cohort, rows)
    return ModelOutputs(
        probs=probabilities(logits, card["preprocessing"]["logit_offset"]),
        attention_in_mask=attention_in_masks(attention, cohort.masks),
        pointing=np.array([pointing_game(a, m) for a, m in zip(att_crop, cohort.masks)], float),
        gradcam_in_mask=np.array([mass_in_mask(c, m) for c, m in zip(cams, cohort.masks)]),
        gradcam_pointing=np.array([pointing_game(c, m) for c, m in zip(cams, cohort.masks)], float),
        threshold=float(card["threshold"]),
        has_attention=bool(card["architecture"]["attention"]),
    )


def clinical_reference(train_manifest: Path, cohort: Cohort) -> ModelOutputs:
    """Clinical-only logistic regression (train rows; Youden threshold on val rows): what imaging must beat."""
    from sklearn.linear_model import LogisticRegression

    from responseai.metrics import youden_threshold

    frame = pd.read_csv(train_manifest)
    encode = lambda f: cohort.encoder.transform(records_from_frame(f, BREAST_SCHEMA))  # noqa: E731
    train, val = frame[frame["split"] == "train"], frame[frame["split"] == "val"]
    model = LogisticRegression(max_iter=2000, class_weight="balanced").fit(encode(train), train["pcr"])
    threshold = youden_threshold(val["pcr"].to_numpy(), model.predict_proba(encode(val))[:, 1])
    nan = np.full(len(cohort.frame), np.nan)
    return ModelOutputs(model.predict_proba(cohort.clinical)[:, 1], nan, nan, nan, nan, threshold, False)


def cnn_term_of_step1(runs_dir: Path, train: Cohort, cohort: Cohort) -> ModelOutputs | None:
    """Step 1 without its kinetic-feature term: what the CNN itself learned (image-only; threshold on val).

    None when step 1 has no such term (then step 1 *is* the CNN). Its AUC says whether the network
    adds anything to the hand-made features or merely carries them.
    """
    from responseai.metrics import youden_threshold

    folder, file = ABLATIONS["step 1 (global)"]
    model, card = load_model(runs_dir / folder / file, build_model, expected_task="pcr")
    check_feature_definition(card)
    if not model.config["radiomics"]:
        return None

    def cnn_logits(c: Cohort, rows: np.ndarray) -> np.ndarray:
        logits, _ = predict_logits(model, c, rows, torch.device("cpu"))
        with torch.no_grad():
            return logits - model.radiomics_logit(torch.from_numpy(c.radiomics[rows])).numpy()

    val = train.rows("val")
    threshold = youden_threshold(train.labels[val], probabilities(cnn_logits(train, val), 0.0))
    nan = np.full(len(cohort.frame), np.nan)
    return ModelOutputs(probabilities(cnn_logits(cohort, np.arange(len(cohort.frame))), 0.0), nan, nan, nan, nan,
                        threshold, False)


def image_feature_reference(train: Cohort, cohort: Cohort) -> ModelOutputs:
    """Kinetic features of the tumour (logistic regression; train rows, Youden on val rows): image-only reference."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from responseai.metrics import youden_threshold

    features = train.radiomics
    fit_rows, val_rows = train.rows("train"), train.rows("val")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, class_weight="balanced"))
    model.fit(features[fit_rows], train.labels[fit_rows])
    threshold = youden_threshold(train.labels[val_rows], model.predict_proba(features[val_rows])[:, 1])
    nan = np.full(len(cohort.frame), np.nan)
    probs = model.predict_proba(cohort.radiomics)[:, 1]
    return ModelOutputs(probs, nan, nan, nan, nan, threshold, False)


def statistic_ci(values: np.ndarray, n_boot: int, seed: int, statistic: str = "mean") -> dict:
    """Mean (or median) of a per-case score with a percentile bootstrap 95 % CI."""
    function = {"mean": np.nanmean, "median": np.nanmedian}[statistic]
    return bootstrap(lambda v: {statistic: float(function(v))}, (np.asarray(values, float),), n_boot, seed)[statistic]


def paired_difference(y: np.ndarray, a: ModelOutputs, b: ModelOutputs, n_boot: int, seed: int) -> dict:
    """Paired bootstrap of (a − b) for sensitivity, specificity and attention-in-mask, at each model's own threshold."""
    def diff(t, pa, pb, ma, mb):
        sa, xa = sensitivity_specificity(t, (pa >= a.threshold).astype(int))
        sb, xb = sensitivity_specificity(t, (pb >= b.threshold).astype(int))
        return {"sensitivity": sa - sb, "specificity": xa - xb, "attention_in_mask": float(np.mean(ma) - np.mean(mb))}

    return bootstrap(diff, (y, a.probs, b.probs, a.attention_in_mask, b.attention_in_mask), n_boot, seed)


def auc_difference(y: np.ndarray, a: ModelOutputs, b: ModelOutputs, n_boot: int, seed: int) -> dict:
    """Paired bootstrap of AUC(a) − AUC(b) on the same cases (resamples without both classes are skipped)."""
    from sklearn.metrics import roc_auc_score

    def diff(t, pa, pb):
        if len(np.unique(t)) < 2:
            return {"auc_difference": float("nan")}
        return {"auc_difference": float(roc_auc_score(t, pa) - roc_auc_score(t, pb))}

    return bootstrap(diff, (y, a.probs, b.probs), n_boot, seed)["auc_difference"]


def sensitivity_at_reference_specificity(y: np.ndarray, a: ModelOutputs, ref: ModelOutputs,
                                         n_boot: int, seed: int) -> dict:
    """Descriptive ROC comparison: sensitivity of ``a`` where its specificity equals ``ref``'s.

    ``ref``'s specificity is taken at its own val-chosen threshold; ``a``'s matching threshold
    is read off the test negatives, so this uses test labels to *align operating points* and is
    reported as a descriptive ROC contrast, never as a decision threshold.
    """
    def fn(t, pa, pr):
        _, spec_ref = sensitivity_specificity(t, (pr >= ref.threshold).astype(int))
        negatives, positives = pa[t == 0], pa[t == 1]
        if not len(negatives) or not len(positives) or not np.isfinite(spec_ref):
            return {"reference_specificity": float("nan"), "sensitivity": float("nan"), "sensitivity_gain": float("nan")}
        threshold = np.quantile(negatives, spec_ref)
        sens = float(np.mean(positives > threshold))
        sens_ref, _ = sensitivity_specificity(t, (pr >= ref.threshold).astype(int))
        return {"reference_specificity": spec_ref, "sensitivity": sens, "sensitivity_gain": sens - sens_ref}

    return bootstrap(fn, (y, a.probs, ref.probs), n_boot, seed)


def shortcut_reliance(probs: np.ndarray, truth: pd.DataFrame, ids: pd.Series) -> dict:
    """Spearman ρ of the probability with the coil-artefact amplitude and with the true pCR logit."""
    t = truth.set_index("patient_id").loc[ids.to_numpy()]
    rho = {name: float(spearmanr(probs, t[column]).statistic) if column in t else float("nan")
           for name, column in (("rho_artefact", "artefact_amplitude"), ("rho_true_logit", "pcr_logit"))}
    return rho  # the independent variant plants no artefact: its rho_artefact is NaN


# the generator's noiseless logit parts, as phantom cohorts write them to truth.csv
CEILING_PARTS = {"image part": "image_logit", "clinical part": "clinical_logit", "both": "pcr_logit"}


def sample_ceilings(truth: pd.DataFrame, ids: pd.Series, y: np.ndarray, n_boot: int, seed: int) -> dict:
    """AUC, on these very exams, of a perfect model of each part of the generator's label rule.

    Why: the issue's targets are AUCs on 60 external exams, and a draw of 60 patients can hold
    much less image signal than the generator's population (image-only ceiling ≈ 0.77). Scoring
    the noiseless image part itself says how far any image-only model could get on this set, and
    whether a miss is the model's or the sample's. Parts missing from ``truth.csv`` are left out.
    """
    t = truth.set_index("patient_id").loc[ids.to_numpy()]
    return {part: bootstrap(auc_metric, (y, t[column].to_numpy(float)), n_boot, seed)["auc"]
            for part, column in CEILING_PARTS.items() if column in t}


def summarise(name: str, out: ModelOutputs, y: np.ndarray, n_boot: int, seed: int) -> dict:
    report = binary_report(y, out.probs, out.threshold, n_boot=n_boot, seed=seed)
    return {
        "threshold_from_val": out.threshold,
        "metrics": report,
        "attention_in_mask": statistic_ci(out.attention_in_mask, n_boot, seed) if out.has_attention else None,
        # the target is stated on the median; a few diffuse maps pull the mean down
        "attention_in_mask_median": (statistic_ci(out.attention_in_mask, n_boot, seed, "median")
                                     if out.has_attention else None),
        "pointing_game": statistic_ci(out.pointing, n_boot, seed) if out.has_attention else None,
        "gradcam_in_mask": statistic_ci(out.gradcam_in_mask, n_boot, seed) if np.isfinite(out.gradcam_in_mask).any() else None,
        "gradcam_pointing_game": statistic_ci(out.gradcam_pointing, n_boot, seed) if np.isfinite(out.gradcam_pointing).any() else None,
        "reliability": {k: v.tolist() for k, v in reliability_curve(y, out.probs).items()},
    }


def acceptance(results: dict, paired: dict, matched: dict, clinical_gap: dict) -> dict:
    """The two claims of seed 000, checked at the val-chosen thresholds (no test-set tuning)."""
    s, b = results[STEPWISE]["metrics"], results[BASELINE]["metrics"]
    att_s, att_b = results[STEPWISE]["attention_in_mask"]["value"], results[BASELINE]["attention_in_mask"]["value"]
    spec_gap = abs(s["specificity"]["value"] - b["specificity"]["value"])
    return {
        "sensitivity_higher": s["sensitivity"]["value"] > b["sensitivity"]["value"],
        "specificity_within_0.05": spec_gap <= SPEC_MARGIN,
        "specificity_gap": spec_gap,
        "claim_1_sensitivity_at_competitive_specificity": bool(
            s["sensitivity"]["value"] > b["sensitivity"]["value"] and spec_gap <= SPEC_MARGIN),
        "claim_2_attention_in_mask_higher": bool(att_s > att_b),
        "paired_difference_stepwise_minus_baseline": paired,
        "auc_stepwise_minus_clinical_only": clinical_gap,
        "stepwise_auc_at_least_clinical_only": bool(clinical_gap["value"] >= 0),
        "descriptive_sensitivity_at_baseline_specificity": matched,
    }


def _fmt(entry: dict | None, digits: int = 2, missing: str = "n/a") -> str:
    if entry is None:
        return missing
    v = entry.get("value", entry.get("mean"))
    return f"{v:.{digits}f} [{entry['ci_low']:.{digits}f}, {entry['ci_high']:.{digits}f}]"


def markdown_table(results: dict, n_cases: int, n_pos: int) -> str:
    head = ("| model | AUC | sensitivity | specificity | balanced acc. | ECE | threshold (val) | attention in mask "
            "(mean) | attention in mask (median) | pointing game | Grad-CAM in mask | ρ(prob, artefact) "
            "| ρ(prob, true logit) |\n" + "|---" * 13 + "|\n")
    lines = []
    for name, r in results.items():
        m = r["metrics"]
        lines.append(
            f"| {name} | {_fmt(m['auc'])} | {_fmt(m['sensitivity'])} | {_fmt(m['specificity'])} | "
            f"{_fmt(m['balanced_accuracy'])} | {_fmt(m['ece'])} | {r['threshold_from_val']:.3f} | "
            f"{_fmt(r['attention_in_mask'], missing='n/a (GAP)' if 'step 1 ' in name else 'n/a')} | "
            f"{_fmt(r.get('attention_in_mask_median'), missing='n/a (GAP)' if 'step 1 ' in name else 'n/a')} | "
            f"{_fmt(r['pointing_game'], missing='n/a (GAP)' if 'step 1 ' in name else 'n/a')} | {_fmt(r['gradcam_in_mask'])} | "
            f"{r['shortcut']['rho_artefact']:+.2f} | {r['shortcut']['rho_true_logit']:+.2f} |")
    return f"External site, n = {n_cases} ({n_pos} pCR); 95 % bootstrap CIs in brackets.\n\n" + head + "\n".join(lines) + "\n"


def ceilings_text(ceilings: dict) -> str:
    """The test set's own ceilings under the table (empty when the cohort's truth has none)."""
    if not ceilings:
        return ""
    parts = "; ".join(f"{part} {_fmt(auc)}" for part, auc in ceilings.items())
    return ("\nAUC of the generator's noiseless logit on these exams (a perfect model of that part of the "
            f"label rule): {parts}.\n")


def plot_curves(outputs: dict[str, ModelOutputs], y: np.ndarray, out_dir: Path) -> list[Path]:
    """ROC, reliability and decision curves of every ablation (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    paths = []
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, o in outputs.items():
        fpr, tpr, _ = roc_curve(y, o.probs)
        ax.plot(fpr, tpr, label=name)
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="1 − specificity", ylabel="sensitivity", title="ROC, external site")
    ax.legend(fontsize=7)
    paths.append(_save(fig, out_dir / "pcr_roc.png"))
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, o in outputs.items():
        curve = reliability_curve(y, o.probs)
        filled = curve["count"] > 0
        ax.plot(curve["predicted"][filled], curve["observed"][filled], "o-", label=name)
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="predicted probability", ylabel="observed pCR frequency", title="Reliability, external site")
    ax.legend(fontsize=7)
    paths.append(_save(fig, out_dir / "pcr_reliability.png"))
    fig, ax = plt.subplots(figsize=(6, 4))
    thresholds = np.linspace(0.05, 0.6, 56)
    for name, o in outputs.items():
        ax.plot(thresholds, net_benefit(y, o.probs, thresholds)["model"], label=name)
    nb = net_benefit(y, next(iter(outputs.values())).probs, thresholds)
    ax.plot(thresholds, nb["treat_all"], "k--", lw=0.8, label="treat all")
    ax.plot(thresholds, nb["treat_none"], "k:", lw=0.8, label="treat none")
    ax.set(xlabel="threshold probability", ylabel="net benefit", title="Decision curve, external site",
           ylim=(-0.05, max(0.3, float(y.mean()) + 0.02)))
    ax.legend(fontsize=7)
    paths.append(_save(fig, out_dir / "pcr_decision_curve.png"))
    return paths


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def evaluate_pcr(
    out_dir: str | Path,
    train_manifest: str | Path,
    test_manifest: str | Path,
    runs_dir: str | Path,
    seed: int = 0,
    n_boot: int = 1000,
    threads: int = 2,
) -> dict:
    """Validate the four trained ablations of ``runs_dir`` externally.

    ``runs_dir`` holds the ``stepwise`` and ``single_stage`` runs of ``python -m training.train breast
    pcr`` on ``train_manifest`` (``training/build_pcr_weights.sh`` trains both); this module only
    reads them. ``train_manifest`` and ``test_manifest`` must come from phantom cohorts with different
    seeds; only the test cohort's ``external`` rows are scored. Writes
    ``pcr_evaluation.md``, ``pcr_evaluation.json`` and three PNGs to ``out_dir``; returns the JSON dict.
    """
    out_dir, train_manifest, test_manifest = Path(out_dir), Path(train_manifest), Path(test_manifest)
    runs_dir = Path(runs_dir)
    needs = (*REQUIRED_PHASES, "split", "mask", "pcr")
    read_manifest(train_manifest, MANIFEST_SCHEMA, require=needs, need_splits=("train",))
    read_manifest(test_manifest, MANIFEST_SCHEMA, require=needs, need_splits=("external",))
    _check_runs(runs_dir)
    _check_different_seeds(train_manifest, test_manifest)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(threads)
    final_card = json.loads((runs_dir / "stepwise" / "breast_pcr.json").read_text(encoding="utf-8"))
    encoder = ClinicalEncoder.from_dict(final_card["preprocessing"]["clinical_encoder"], BREAST_SCHEMA)
    cohort = load_test_cohort(test_manifest, final_card["architecture"], encoder)
    y = cohort.labels
    truth = pd.read_csv(test_manifest.parent / "truth.csv")
    outputs, results = {}, {}
    for name, (folder, file) in tqdm(ABLATIONS.items(), desc="ablations"):
        outputs[name] = run_ablation(runs_dir / folder / file, cohort)
        results[name] = summarise(name, outputs[name], y, n_boot, seed)
        results[name]["shortcut"] = shortcut_reliance(outputs[name].probs, truth, cohort.frame["patient_id"])
    train = load_cohort(train_manifest, final_card["architecture"], encoder=encoder, show_progress=False)
    references = {CLINICAL_ONLY: clinical_reference(train_manifest, cohort),
                  "kinetic features, image-only logistic regression (reference)": image_feature_reference(train, cohort)}
    cnn_term = cnn_term_of_step1(runs_dir, train, cohort)
    if cnn_term is not None:
        references["step 1 without its kinetic-feature term (the CNN alone)"] = cnn_term
    for reference, output in references.items():
        outputs[reference] = output
        results[reference] = summarise(reference, output, y, n_boot, seed)
        results[reference]["shortcut"] = shortcut_reliance(output.probs, truth, cohort.frame["patient_id"])
    paired = paired_difference(y, outputs[STEPWISE], outputs[BASELINE], n_boot, seed)
    matched = sensitivity_at_reference_specificity(y, outputs[STEPWISE], outputs[BASELINE], n_boot, seed)
    summary = {
        "test_cohort": str(test_manifest), "train_cohort": str(train_manifest),
        "n_external": int(len(y)), "n_pcr": int(y.sum()), "n_boot": n_boot,
        "threshold_rule": final_card["threshold_rule"], "results": results,
        "test_set_ceilings": sample_ceilings(truth, cohort.frame["patient_id"], y, n_boot, seed),
        "acceptance": acceptance(results, paired, matched,
                                 auc_difference(y, outputs[STEPWISE], outputs[CLINICAL_ONLY], n_boot, seed)),
    }
    (out_dir / "pcr_evaluation.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    table = markdown_table(results, len(y), int(y.sum())) + ceilings_text(summary["test_set_ceilings"])
    (out_dir / "pcr_evaluation.md").write_text("# pCR ablations, external validation\n\n" + table + "\n" +
                                               _acceptance_text(summary["acceptance"]), encoding="utf-8")
    plot_curves(outputs, y, out_dir)
    log.info("external evaluation written to %s", out_dir)
    return summary


def _acceptance_text(acc: dict) -> str:
    d = acc["paired_difference_stepwise_minus_baseline"]
    m = acc["descriptive_sensitivity_at_baseline_specificity"]
    return (
        f"Stepwise − clinical-only AUC (paired bootstrap): {_fmt(acc['auc_stepwise_minus_clinical_only'])}.\n\n"
        f"Stepwise − single-stage (paired bootstrap): sensitivity {_fmt(d['sensitivity'])}, "
        f"specificity {_fmt(d['specificity'])}, attention in mask {_fmt(d['attention_in_mask'])}.\n\n"
        f"- Claim 1 (higher sensitivity, specificity within {SPEC_MARGIN}): "
        f"{'holds' if acc['claim_1_sensitivity_at_competitive_specificity'] else 'does NOT hold'} "
        f"(sensitivity higher: {acc['sensitivity_higher']}, specificity gap {acc['specificity_gap']:.3f}).\n"
        f"- Claim 2 (attention more inside the tumour): "
        f"{'holds' if acc['claim_2_attention_in_mask_higher'] else 'does NOT hold'}.\n\n"
        f"Descriptive ROC contrast (test labels align the operating points; not a decision rule): at the "
        f"baseline's external specificity {_fmt(m['reference_specificity'])}, the stepwise model's sensitivity is "
        f"{_fmt(m['sensitivity'])}, a gain of {_fmt(m['sensitivity_gain'])} over the baseline.\n"
    )


def _check_runs(runs_dir: Path) -> None:
    """Every ablation's weights must exist: the evaluation reads trained runs, it never trains."""
    missing = [str(runs_dir / folder / file) for folder, file in ABLATIONS.values() if not (runs_dir / folder / file).is_file()]
    if missing:
        raise ResponseAIError(
            f"trained runs not found: {', '.join(missing)}; train them first with "
            "`python -m training.train breast pcr --mode stepwise|single-stage --out RUNS/stepwise|RUNS/single_stage "
            "--manifest TRAIN.csv` (training/build_pcr_weights.sh does both)")


def _check_different_seeds(train_manifest: Path, test_manifest: Path) -> None:
    """Refuse to validate on the training phantom (same generator and seed = same patients)."""
    shared = _cohort_sources(train_manifest) & _cohort_sources(test_manifest)
    if shared:
        generator, seed = sorted(shared, key=str)[0]
        raise ResponseAIError(f"train and test cohorts share phantom seed [{seed}] of {generator}: "
                              "generate the test cohort with another seed")


def _cohort_sources(manifest: Path) -> set[tuple]:
    """(generator, seed) of the cohort(s) behind a manifest, from ``cohort.json`` (a joined cohort lists several)."""
    meta = manifest.parent / "cohort.json"
    info = json.loads(meta.read_text(encoding="utf-8")) if meta.exists() else {}
    sources = info.get("sources") or [{"generator": info.get("generator"), "seed": seed}
                                      for seed in info.get("seeds", [info.get("seed")])]
    return {(s.get("generator"), s.get("seed")) for s in sources if s.get("seed") is not None}


def main(argv: list[str] | None = None) -> int:
    """``responseai evaluate breast pcr --train CSV --test CSV --runs DIR --out DIR``."""
    import argparse

    parser = argparse.ArgumentParser(prog="responseai evaluate breast pcr", description=__doc__.splitlines()[0])
    parser.add_argument("--train", required=True, type=Path, help="training cohort manifest.csv")
    parser.add_argument("--test", required=True, type=Path, help="test cohort manifest.csv (another seed)")
    parser.add_argument("--out", required=True, type=Path, help="report folder")
    parser.add_argument("--runs", required=True, type=Path,
                        help="folder with the trained stepwise/ and single_stage/ runs (training/build_pcr_weights.sh)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    evaluate_pcr(args.out, args.train, args.test, args.runs, args.seed, args.n_boot, args.threads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
