"""Leave-one-domain-out evaluation: ERM vs + MixStyle / IRM vs + test-time adaptation, one table.

    responseai evaluate crossmodal lodo --out DIR [--n-per-domain 100] [--epochs 30] [--seed 0] [--n-boot 1000]

For each of the four phantom sites in turn: the other three sites' cases are split 75 / 25 into
training and in-domain test; two models are trained on the training part (ERM: no MixStyle, no
IRM; DG: MixStyle + IRM), and both are tested on the in-domain test cases and on every case of
the held-out site. "+ TTA" is the DG model adapted (:mod:`responseai.crossmodal.tta`) on each
unlabelled test batch of ``--tta-batch`` cases, separately per batch, starting from the source
weights every time (in-domain batches too, so the gap compares like with like).

Metrics, pooled over the four folds (95 % percentile bootstrap over cases): macro one-vs-rest
AUC and accuracy on the held-out sites, in-domain AUC, the domain gap (in-domain minus held-out
AUC), quadratic-weighted κ of the grade (malignant cases), lesion IoU / Dice (lesion cases,
mask probability ≥ 0.5), ECE of the top-class probability (10 bins), and the alignment: mean
cosine of a patient's mammogram and pathology embeddings vs. other patients' (held-out sites),
before training (same architecture at initialisation) and after. The training loop is the core's
:func:`responseai.crossmodal.fitting.fit`, so no ``training/`` import is needed.
Writes ``lodo.json``, ``lodo.md`` and ``cases.csv`` into DIR.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import accuracy_score, cohen_kappa_score, roc_auc_score

from responseai.crossmodal.constants import CLASSES, DOMAINS
from responseai.crossmodal.fitting import CohortTensors, FitConfig, cohort_tensors, fit, predict
from responseai.crossmodal.model import CrossModalNet, ModelConfig
from responseai.crossmodal.phantom import make_cohort
from responseai.crossmodal.tta import TTAConfig, adapt
from responseai.metrics import bootstrap, expected_calibration_error
from responseai.outputs import json_safe

log = logging.getLogger(__name__)

VARIANTS = ("ERM", "+MixStyle/IRM", "+MixStyle/IRM+TTA")


def macro_auc(label: np.ndarray, probs: np.ndarray) -> float:
    if len(np.unique(label)) < len(CLASSES):
        return float("nan")
    return float(roc_auc_score(label, probs, multi_class="ovr", average="macro"))


def top_class_ece(label: np.ndarray, probs: np.ndarray) -> float:
    """ECE of the top-class probability: is '0.9 sure' right 90 % of the time?"""
    return expected_calibration_error((probs.argmax(1) == label).astype(int), probs.max(1))


def overlap(mask_prob: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-case IoU and Dice of the thresholded lesion map."""
    pred, truth = mask_prob >= 0.5, mask.astype(bool)
    inter = (pred & truth).sum((1, 2))
    union = (pred | truth).sum((1, 2))
    total = pred.sum((1, 2)) + truth.sum((1, 2))
    return inter / np.maximum(union, 1), 2 * inter / np.maximum(total, 1)


@torch.no_grad()
def _tta_predict(model: CrossModalNet, data: CohortTensors, batch: int, config: TTAConfig) -> dict[str, np.ndarray]:
    """Adapt a fresh copy on each unlabelled batch, then predict that batch.

    The cases are cut into near-equal batches of at most ``batch`` (100 cases, batch 32 → 4 × 25),
    so no short tail falls under the adaptation's minimum batch.
    """
    parts: dict[str, list] = {}
    for index in np.array_split(np.arange(len(data)), int(np.ceil(len(data) / batch))):
        b = data.batch(index)
        with torch.enable_grad():
            adapted = adapt(model, b["mammogram"], b["pathology"], b["has_m"], b["has_p"], config)
        sub = CohortTensors(**{k: getattr(data, k)[torch.as_tensor(index)] for k in vars(data)})
        for key, value in predict(adapted, sub).items():
            parts.setdefault(key, []).append(value)
    return {k: np.concatenate(v) for k, v in parts.items()}


def _fold(held_out: int, args, cohort, tensors: CohortTensors, rng: np.random.Generator) -> list[dict]:
    """Train ERM and DG without ``held_out``; per-case rows for every variant and split."""
    source = np.nonzero(cohort.domain != held_out)[0]
    source = rng.permutation(source)
    n_in = len(source) // 4
    splits = {"in": np.sort(source[:n_in]), "out": np.nonzero(cohort.domain == held_out)[0]}
    train = np.sort(source[n_in:])
    subset = lambda idx: CohortTensors(**{k: getattr(tensors, k)[torch.as_tensor(idx)] for k in vars(tensors)})
    rows = []
    models = {}
    for name, config in (("ERM", FitConfig(epochs=args.epochs, mixstyle=False, irm_weight=0.0, seed=args.seed)),
                         ("+MixStyle/IRM", FitConfig(epochs=args.epochs, seed=args.seed))):
        torch.manual_seed(args.seed)
        models[name] = CrossModalNet(ModelConfig())
        started = time.time()
        fit(models[name], subset(train), config)
        log.info("fold %s, %s trained in %.0f s", DOMAINS[held_out], name, time.time() - started)
    torch.manual_seed(args.seed)
    untrained = CrossModalNet(ModelConfig()).eval()
    for split, idx in splits.items():
        data = subset(idx)
        preds = {"ERM": predict(models["ERM"], data), "+MixStyle/IRM": predict(models["+MixStyle/IRM"], data),
                 "+MixStyle/IRM+TTA": _tta_predict(models["+MixStyle/IRM"], data, args.tta_batch, TTAConfig()),
                 "untrained": predict(untrained, data)}
        for variant, p in preds.items():
            iou, dice = overlap(p["mask_prob"], cohort.mask[idx])
            cos_pair = (p["emb_m"] * p["emb_p"]).sum(1)
            cos_other = (p["emb_m"] @ p["emb_p"].T).sum(1) - cos_pair
            top1 = (p["emb_m"] @ p["emb_p"].T).argmax(1) == np.arange(len(idx))
            for j, case in enumerate(idx):
                rows.append({"fold": DOMAINS[held_out], "variant": variant, "split": split, "case": int(case),
                             "label": int(cohort.label[case]), "grade": int(cohort.grade[case]),
                             "probs": p["probs"][j], "grade_pred": int(p["grade_probs"][j].argmax()),
                             "iou": float(iou[j]), "dice": float(dice[j]), "lesion": bool(cohort.mask[case].any()),
                             "cos_pair": float(cos_pair[j]), "cos_other": float(cos_other[j] / (len(idx) - 1)),
                             "top1": bool(top1[j])})
    return rows


def _metrics(rows: list[dict], n_boot: int, seed: int) -> dict:
    """Bootstrap every metric of one variant from its pooled per-case rows."""
    arr = lambda key, sel: np.array([r[key] for r in rows if sel(r)])
    out_rows = lambda r: r["split"] == "out"
    label, probs = arr("label", out_rows), np.stack(arr("probs", out_rows))
    result = bootstrap(lambda y, p: {"auc": macro_auc(y, p), "accuracy": float(accuracy_score(y, p.argmax(1))),
                                     "ece": top_class_ece(y, p)}, (label, probs), n_boot, seed)
    split = np.array([r["split"] == "out" for r in rows])
    all_label, all_probs = arr("label", lambda r: True), np.stack(arr("probs", lambda r: True))
    result.update(bootstrap(lambda y, p, s: {"auc_in": macro_auc(y[~s], p[~s]),
                                             "gap": macro_auc(y[~s], p[~s]) - macro_auc(y[s], p[s])},
                            (all_label, all_probs, split), n_boot, seed))
    graded = lambda r: out_rows(r) and r["grade"] >= 0
    result.update(bootstrap(lambda g, q: {"grade_qwk": float(cohen_kappa_score(g, q, weights="quadratic"))},
                            (arr("grade", graded), arr("grade_pred", graded)), n_boot, seed))
    lesion = lambda r: out_rows(r) and r["lesion"]
    result.update(bootstrap(lambda i, d: {"iou": float(i.mean()), "dice": float(d.mean())},
                            (arr("iou", lesion), arr("dice", lesion)), n_boot, seed))
    result.update(bootstrap(lambda c, o, t: {"cos_pair": float(c.mean()), "cos_other": float(o.mean()),
                                             "top1_retrieval": float(t.mean())},
                            (arr("cos_pair", out_rows), arr("cos_other", out_rows), arr("top1", out_rows)), n_boot, seed))
    return result


def _fmt(m: dict) -> str:
    return f"{m['value']:.3f} [{m['ci_low']:.3f}, {m['ci_high']:.3f}]"


def table(metrics: dict) -> str:
    """The one markdown table of docs/crossmodal.md."""
    cols = [("auc", "held-out macro AUC"), ("auc_in", "in-domain AUC"), ("gap", "domain gap"),
            ("accuracy", "held-out accuracy"), ("grade_qwk", "grade QWK"), ("iou", "lesion IoU"), ("dice", "lesion Dice"),
            ("ece", "ECE")]
    lines = ["| variant | " + " | ".join(c[1] for c in cols) + " |", "| --- " * (len(cols) + 1) + "|"]
    lines += [f"| {v} | " + " | ".join(_fmt(metrics[v][k]) for k, _ in cols) + " |" for v in VARIANTS]
    lines += ["", "| alignment (held-out sites) | cosine same patient | cosine other patients | top-1 retrieval |",
              "| --- | --- | --- | --- |"]
    for name, v in (("before (initialisation)", "untrained"), ("after (ERM)", "ERM"), ("after (+MixStyle/IRM)", "+MixStyle/IRM")):
        m = metrics[v]
        lines.append(f"| {name} | {_fmt(m['cos_pair'])} | {_fmt(m['cos_other'])} | {_fmt(m['top1_retrieval'])} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="responseai evaluate crossmodal", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--n-per-domain", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--tta-batch", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 avoids oversubscription)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    started = time.time()
    cohort = make_cohort(args.n_per_domain * len(DOMAINS), args.seed + 3000)
    tensors = cohort_tensors(cohort, ModelConfig().image_size)
    rng = np.random.default_rng(args.seed)
    rows = [row for d in range(len(DOMAINS)) for row in _fold(d, args, cohort, tensors, rng)]
    metrics = {v: _metrics([r for r in rows if r["variant"] == v], args.n_boot, args.seed)
               for v in (*VARIANTS, "untrained")}
    args.out.mkdir(parents=True, exist_ok=True)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    summary = {"settings": settings, "cohort_seed": args.seed + 3000, "n_cases": len(cohort),
               "model": ModelConfig().to_dict(), "fit": FitConfig(epochs=args.epochs).to_dict(),
               "tta": TTAConfig().to_dict(), "minutes": (time.time() - started) / 60, "metrics": metrics}
    (args.out / "lodo.json").write_text(json.dumps(json_safe(summary), indent=2) + "\n", encoding="utf-8")
    (args.out / "lodo.md").write_text(table(metrics), encoding="utf-8")
    with open(args.out / "cases.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({**r, "probs": " ".join(f"{x:.4f}" for x in r["probs"])} for r in rows)
    log.info("leave-one-domain-out evaluation written to %s (%.1f min)\n%s", args.out, summary["minutes"], table(metrics))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
