"""Evaluation of grade-guided fusion (seed 003) on the CT/MRI/PET phantom: ablations + permutation test.

What it answers: does telling the fusion the grade improve response prediction beyond an
unguided deep fusion, and does shuffling that grade at training time take the gain away?

Protocol (never train and test on one phantom seed):

- development cohort ``seed`` (its ``train`` / ``val`` splits only) → every model;
- internal test cohort ``seed + 1000`` (sites A–C; its site-D cases join the external set);
- external cohort ``seed + 2000`` (site D only).

Models: the ablation ladder imaging only → early fusion → deep fusion (unguided gate) →
grade-guided, plus grade-guided trained with the fusion's grade permuted. Metrics with 95 %
bootstrap CIs (``n_boot`` replicates): grade accuracy and Cohen's κ; response AUC, precision,
recall at the validation-chosen threshold; C-index of the risk 1 − p(response) for PFS;
paired ΔAUC (grade-guided − deep fusion, grade-guided − permuted). Subtypes (grade-guided
model): Kaplan–Meier curves and log-rank p across predicted subtypes and within G3, and
subtype consistency = ARI between the prototype assignment and k-means (k = M) refitted on
bootstrap resamples of the embedding. Response is reported with the biopsy grade given (the
grade-guided model's intended use) and non-invasively (predicted grade).

Every model is trained with the same :class:`training.gradeguided.TrainConfig` (epoch kept on
validation response AUC, grading head frozen after ``freeze_grade_epoch`` epochs, modality
dropout); the grade-guided model is the one shipped in ``Resources/Models``.

    responseai evaluate gradeguided ablation --out DIR [--n 800 --n-test 300 --n-external 200 --epochs 24 ...]

NaN metrics (a cohort with one class) are written as JSON ``null``, never as bare ``NaN``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from dataclasses import replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from lifelines import KaplanMeierFitter  # noqa: E402
from lifelines.statistics import multivariate_logrank_test  # noqa: E402
from sklearn.cluster import KMeans  # noqa: E402
from sklearn.metrics import accuracy_score, adjusted_rand_score, cohen_kappa_score  # noqa: E402

from responseai.gradeguided.preprocess import (  # noqa: E402
    RoiSpec, Sample, clinical_encoder_from_card, prepare_inputs,
)
from responseai.metrics import N_BOOTSTRAP, auc_metric, auc_or_nan, binary_report, bootstrap, concordance_index  # noqa: E402
from responseai.gradeguided.reference import design, fit_reference  # noqa: E402
from responseai.gradeguided.model import ABLATIONS, predict_arrays  # noqa: E402
from responseai.gradeguided.constants import GRADES, SUBTYPES  # noqa: E402
from responseai.gradeguided.evaluation import development_samples, phantom_samples  # noqa: E402
from responseai.outputs import json_safe  # noqa: E402
from training.gradeguided import TrainConfig, train_gradeguided  # noqa: E402

log = logging.getLogger(__name__)

PERMUTED = "grade_guided_permuted"


def _grade_metrics(true: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    return {"accuracy": float(accuracy_score(true, pred)), "kappa": float(cohen_kappa_score(true, pred))}


def _cindex(time: np.ndarray, risk: np.ndarray, event: np.ndarray) -> dict[str, float]:
    return {"c_index": concordance_index(time, risk, event) if event.sum() else float("nan")}


def _delta_auc(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    return {"delta_auc": auc_or_nan(y, a) - auc_or_nan(y, b)}


def reference_models(dev: list[Sample], dev_inputs, held_inputs, labels: dict, cohorts: dict, n_boot: int,
                     seed: int) -> dict:
    """Logistic regression on ROI statistics + clinical, without and with grade × feature interactions.

    Fitted on the development ``train`` rows (C by 5-fold CV); held-out AUCs with the biopsy
    grade, and the paired gain of the interactions. See :mod:`responseai.gradeguided.reference`.
    """
    train = np.array([s.split == "train" for s in dev])
    response = np.array([s.response for s in dev])[train]
    probs = {}
    for name, interactions in (("no_grade", False), ("grade_interactions", True)):
        x = design(dev_inputs.image[train], dev_inputs.clinical[train], dev_inputs.grade[train], len(GRADES), interactions)
        model = fit_reference(x, response, seed)
        held = design(held_inputs.image, held_inputs.clinical, held_inputs.grade, len(GRADES), interactions)
        probs[name] = model.predict_proba(held)[:, 1]
    result = {}
    for cohort, mask in cohorts.items():
        y = labels["response"][mask]
        result[cohort] = {name: bootstrap(auc_metric, (y, p[mask]), n_boot)["auc"] for name, p in probs.items()}
        result[cohort]["delta_auc"] = bootstrap(
            _delta_auc, (y, probs["grade_interactions"][mask], probs["no_grade"][mask]), n_boot)["delta_auc"]
    return result


def cohort_metrics(pred: dict, noninvasive: dict, labels: dict, threshold: float, n_boot: int) -> dict:
    """Grade, response (biopsy grade given and non-invasive) and C-index, each with a 95 % CI."""
    grade_pred = noninvasive["grade_probs"].argmax(1)
    response = binary_report(labels["response"], pred["response_prob"], threshold, n_boot)
    response_ni = binary_report(labels["response"], noninvasive["response_prob"], threshold, n_boot)
    return {
        "grade": bootstrap(_grade_metrics, (labels["grade"], grade_pred), n_boot),
        "response": {k: response[k] for k in ("auc", "precision", "sensitivity", "specificity", "ece")},
        "response_noninvasive": {k: response_ni[k] for k in ("auc", "precision", "sensitivity")},
        "c_index": bootstrap(_cindex, (labels["pfs"], 1 - pred["response_prob"], labels["event"]), n_boot)["c_index"],
    }


def subtype_analysis(pred: dict, labels: dict, true_subtype: np.ndarray, out_dir: Path, n_boot: int, seed: int) -> dict:
    """KM + log-rank across predicted subtypes (all, and within G3), bootstrap ARI consistency."""
    assigned = pred["subtype_probs"].argmax(1)
    g3 = labels["grade"] == 2
    result = {"counts": np.bincount(assigned, minlength=len(SUBTYPES)).tolist(),
              "logrank_p": _km_plot(labels, assigned, np.ones_like(g3), out_dir / "km_subtypes.png", "all held-out cases"),
              "logrank_p_g3": _km_plot(labels, assigned, g3, out_dir / "km_subtypes_g3.png", "G3 only"),
              "ari_vs_true_subtype": float(adjusted_rand_score(true_subtype, assigned)),
              "by_grade": [np.bincount(assigned[labels["grade"] == g], minlength=len(SUBTYPES)).tolist()
                           for g in range(len(GRADES))]}
    rng = np.random.default_rng(seed)
    embedding, aris = pred["embedding"], []
    for replicate in range(n_boot):
        idx = rng.integers(0, len(embedding), len(embedding))
        km = KMeans(len(SUBTYPES), n_init=3, random_state=replicate).fit(embedding[idx])
        aris.append(adjusted_rand_score(assigned, km.predict(embedding)))
    low, high = np.quantile(aris, [0.025, 0.975])
    result["ari_bootstrap"] = {"value": float(np.mean(aris)), "ci_low": float(low), "ci_high": float(high), "n_boot": n_boot}
    return result


def _km_plot(labels: dict, groups: np.ndarray, keep: np.ndarray, path: Path, title: str) -> float:
    """Kaplan–Meier per subtype on the selected cases; returns the multivariate log-rank p."""
    time, event, groups = labels["pfs"][keep], labels["event"][keep], groups[keep]
    fig, ax = plt.subplots(figsize=(5, 4))
    for m in np.unique(groups):
        KaplanMeierFitter().fit(time[groups == m], event[groups == m],
                                label=f"S{m + 1} (n={int((groups == m).sum())})").plot_survival_function(ax=ax, ci_show=False)
    p = float(multivariate_logrank_test(time, groups, event).p_value) if len(np.unique(groups)) > 1 else float("nan")
    ax.set(title=f"PFS by predicted subtype, {title} (log-rank p={p:.3g})", xlabel="months", ylabel="PFS")
    ax.title.set_fontsize(8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return p


def _labels(samples: list[Sample]) -> dict[str, np.ndarray]:
    return {"grade": np.array([s.grade for s in samples]), "response": np.array([s.response for s in samples]),
            "pfs": np.array([s.pfs_months for s in samples], float), "event": np.array([s.pfs_event for s in samples])}


def _train_all(dev: list[Sample], out_dir: Path, base: TrainConfig, ablations: tuple[str, ...]) -> dict:
    """Train every ablation and the permutation-test model on the development cohort."""
    results = {}
    for name in (*ablations, PERMUTED):
        config = replace(base, ablation="grade_guided", permute_grade=True) if name == PERMUTED else replace(base, ablation=name)
        log.info("training %s", name)
        results[name] = train_gradeguided(dev, out_dir / "models" / name, config)
    return results


def evaluate_gradeguided(out_dir: str | Path, n: int = 400, n_test: int = 200, n_external: int = 100, seed: int = 0,
                         epochs: int = 30, n_boot: int = N_BOOTSTRAP, threads: int = 1,
                         ablations: tuple[str, ...] = ABLATIONS, config: TrainConfig | None = None) -> dict:
    """Run the whole evaluation; writes ``gradeguided_evaluation.{md,json}`` and KM PNGs into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(threads)
    dev = development_samples(n, seed)
    config = replace(config or TrainConfig(), epochs=epochs, seed=seed)
    models = _train_all(dev, out_dir, config, ablations)
    test, test_truth = phantom_samples(seed + 1000, n_test, split="test")
    external, ext_truth = phantom_samples(seed + 2000, n_external, external_only=True)
    held_out = test + external
    truth = np.concatenate([test_truth, ext_truth])
    card = next(iter(models.values())).card
    inputs = prepare_inputs(held_out, RoiSpec.from_dict(card["preprocessing"]["roi"]),
                            clinical_encoder_from_card(card["preprocessing"]["clinical_encoder"]))
    cohorts = {"test": np.array([s.split == "test" for s in held_out]),
               "external": np.array([s.split == "external" for s in held_out])}
    labels = _labels(held_out)
    predictions = {name: (predict_arrays(r.model, inputs.image, inputs.clinical, inputs.grade),
                          predict_arrays(r.model, inputs.image, inputs.clinical, None)) for name, r in models.items()}
    report = {"protocol": {"seed_dev": seed, "seed_test": seed + 1000, "seed_external": seed + 2000,
                           "n_dev_train_val": len(dev), "n_test": int(cohorts["test"].sum()),
                           "n_external": int(cohorts["external"].sum()), "epochs": epochs, "n_boot": n_boot,
                           "train_config": {k: v for k, v in vars(config).items() if k not in ("ablation", "permute_grade")},
                           "kept_epoch": {k: r.card["training_data"]["kept_epoch"] for k, r in models.items()},
                           "val_response_auc": {k: r.card["metrics"]["val_response_auc"] for k, r in models.items()}},
              "models": {}, "paired": {}, "subtypes": {}}
    for name, (pred, ni) in predictions.items():
        report["models"][name] = {"threshold": models[name].card["threshold"],
                                  **{c: cohort_metrics(_take(pred, m), _take(ni, m), _take(labels, m),
                                                       models[name].card["threshold"], n_boot) for c, m in cohorts.items()},
                                  "mean_alpha": dict(zip(models[name].card["architecture"]["sources"],
                                                         pred["alpha"].mean(0).round(3).tolist()))}
    for cohort, mask in cohorts.items():
        y = labels["response"][mask]
        guided = predictions["grade_guided"][0]["response_prob"][mask]
        for other in ("deep_fusion", PERMUTED):
            if other in predictions:
                report["paired"][f"{cohort}: grade_guided - {other}"] = bootstrap(
                    _delta_auc, (y, guided, predictions[other][0]["response_prob"][mask]), n_boot)["delta_auc"]
    report["reference"] = reference_models(dev, models["grade_guided"].inputs, inputs, labels, cohorts, n_boot, seed)
    report["subtypes"] = subtype_analysis(predictions["grade_guided"][0], labels, truth, out_dir, min(n_boot, 200), seed)
    report = json_safe(report)
    (out_dir / "gradeguided_evaluation.json").write_text(json.dumps(report, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    (out_dir / "gradeguided_evaluation.md").write_text(markdown_report(report), encoding="utf-8")
    log.info("wrote %s", out_dir / "gradeguided_evaluation.md")
    return report


def _take(arrays: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[mask] for k, v in arrays.items()}


def _num(value: float | None, fmt: str = ".3f") -> str:
    return "n/a" if value is None or (isinstance(value, float) and not math.isfinite(value)) else format(value, fmt)


def _ci(entry: dict) -> str:
    return f"{_num(entry['value'])} [{_num(entry['ci_low'])}, {_num(entry['ci_high'])}]"


def markdown_report(report: dict) -> str:
    """One Markdown table per question: ablations / permutation, paired ΔAUC, subtypes."""
    p = report["protocol"]
    lines = [f"Development seed {p['seed_dev']} ({p['n_dev_train_val']} train+val cases), internal test seed "
             f"{p['seed_test']} (n={p['n_test']}), external site D seed {p['seed_external']} (n={p['n_external']}); "
             f"{p['epochs']} epochs; 95 % bootstrap CIs ({p['n_boot']} replicates).", "",
             "| model | cohort | grade acc | grade κ | response AUC (biopsy grade) | precision | recall | "
             "AUC non-invasive | C-index |", "|---|---|---|---|---|---|---|---|---|"]
    for name, entry in report["models"].items():
        for cohort in ("test", "external"):
            m = entry[cohort]
            lines.append(f"| {name} | {cohort} | {_ci(m['grade']['accuracy'])} | {_ci(m['grade']['kappa'])} | "
                         f"{_ci(m['response']['auc'])} | {_ci(m['response']['precision'])} | "
                         f"{_ci(m['response']['sensitivity'])} | {_ci(m['response_noninvasive']['auc'])} | "
                         f"{_ci(m['c_index'])} |")
    lines += ["", "| paired ΔAUC (same cases) | value [95 % CI] |", "|---|---|"]
    lines += [f"| {k} | {_ci(v)} |" for k, v in report["paired"].items()]
    r = report["reference"]
    lines += ["", "| reference: logistic regression on ROI statistics + clinical | test AUC | external AUC |",
              "|---|---|---|"]
    for key, label in (("no_grade", "no grade"), ("grade_interactions", "grade × feature interactions"),
                       ("delta_auc", "paired Δ (interactions − no grade)")):
        lines.append(f"| {label} | {_ci(r['test'][key])} | {_ci(r['external'][key])} |")
    s = report["subtypes"]
    lines += ["", "| subtypes (grade-guided, held-out) | value |", "|---|---|",
              f"| cases per predicted subtype | {s['counts']} |",
              f"| log-rank p, all | {_num(s['logrank_p'], '.3g')} |",
              f"| log-rank p, within G3 | {_num(s['logrank_p_g3'], '.3g')} |",
              f"| ARI vs k-means on bootstrap resamples | {_ci(s['ari_bootstrap'])} |",
              f"| ARI vs true latent subtype | {_num(s['ari_vs_true_subtype'])} |",
              f"| cases per predicted subtype within G1 / G2 / G3 | {' / '.join(map(str, s['by_grade']))} |", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``responseai evaluate gradeguided ablation``: train the ladder on phantom seed S, test on S+1000 / S+2000."""
    parser = argparse.ArgumentParser(prog="responseai evaluate gradeguided ablation", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--n", type=int, default=800, help="development cohort size (train/val splits used)")
    parser.add_argument("--n-test", type=int, default=300)
    parser.add_argument("--n-external", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--freeze-grade-epoch", type=int, default=15, help="0: never freeze the grading head")
    parser.add_argument("--select-on", choices=("response_auc", "loss"), default="response_auc")
    parser.add_argument("--modality-dropout", type=float, default=0.1)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--ablations", nargs="+", choices=ABLATIONS, default=list(ABLATIONS))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if "grade_guided" not in args.ablations:
        parser.error("--ablations must include grade_guided (the paired comparisons and subtypes need it)")
    config = TrainConfig(select_on=args.select_on, freeze_grade_epoch=args.freeze_grade_epoch,
                         modality_dropout=args.modality_dropout)
    evaluate_gradeguided(args.out, args.n, args.n_test, args.n_external, args.seed, args.epochs, args.n_boot,
                         args.threads, tuple(args.ablations), config)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
