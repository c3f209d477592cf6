"""Learn the segmentation's candidate ranker (second stage) and write it into the segmentation card.

``python -m training.train breast candidates --manifest CSV [CSV ...] --weights SEG --out SEG_OUT``:
runs the shipped network on every training / validation exam of the manifests (external sites
are never read), describes each tumour candidate (:mod:`responseai.breast.segmentation.candidates`)
and fits a linear ranker on pairs: the tumour's descriptors minus those of every other candidate
of the same exam, a logistic regression without intercept (a ranking SVM's logistic cousin).
It is judged by 5-fold cross-validation grouped by exam against the mean-probability rule, on
the exams where the tumour is among the candidates (elsewhere no rule can find it). The network
weights are copied unchanged; the card gains ``candidate_ranker`` and a new version.

``--close-catch C`` also sets the ranker's ``close_margin``: the smallest score lead over the
runner-up (on a 0.25 grid) under which at least the share C of these exams' wrong choices fall —
a choice that close is flagged to the user as a close call. ``--keep-ranker`` scores the card's own
ranker instead of fitting one (to add that margin to a shipped ranker without changing its choices).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from tqdm import tqdm

from responseai.breast.constants import MANIFEST_SCHEMA, REQUIRED_PHASES
from responseai.breast.preprocess import check_phases
from responseai.breast.segmentation.candidates import FEATURES, CandidateRanker, find_candidates
from responseai.breast.segmentation.inference import BREAST, card_ranker, segment_canonical
from responseai.errors import ResponseAIError
from responseai.io import read_image, resample_to
from responseai.manifest import read_manifest
from responseai.weights import copy_with_card, read_card, sha256_of

log = logging.getLogger(__name__)


def describe_exams(manifest: Path, weights: Path, splits: tuple[str, ...] = ("train", "val")) -> pd.DataFrame:
    """One row per described candidate of every exam of ``splits``: exam id, FEATURES, mean probability,
    whether it may be chosen (``allowed``) and whether it is the tumour.

    Candidates outside the breast region are kept: they are never chosen, but they are the heart,
    vessels and nodes the ranker must learn to put last (on an exam where the breast region runs
    into the heart, the region rule alone does not discard it).
    """
    table = read_manifest(manifest, MANIFEST_SCHEMA, require=(*REQUIRED_PHASES, "split", "mask"), need_splits=splits[:1]).frame
    rows = []
    for _, row in tqdm(table[table["split"].isin(splits)].iterrows(), desc=f"describing {manifest.parent.name}"):
        phases = {p: read_image(manifest.parent / row[p], p) for p in ("pre", "post1", "post2") if isinstance(row.get(p), str)}
        seg = segment_canonical(check_phases(phases), weights)
        truth = resample_to(read_image(manifest.parent / row["mask"], "mask"), seg.grid, is_label=True).array > 0
        found = find_candidates(seg.probabilities[-1], seg.threshold, seg.region, seg.channels, seg.grid.spacing,
                                seg.probabilities[BREAST] if len(seg.probabilities) > 2 else None,
                                describe_outside=True)
        for i in np.flatnonzero(np.isfinite(found.features).all(1)):
            rows.append({"exam": f"{manifest.parent.name}/{row['patient_id']}", "allowed": bool(found.allowed[i]),
                         "tumour": bool(truth[found.labels == i + 1].any()), "mean_p": float(found.mean_probability[i]),
                         **dict(zip(FEATURES, found.features[i], strict=True))})
    return pd.DataFrame(rows, columns=["exam", "allowed", "tumour", "mean_p", *FEATURES])


def rankable(table: pd.DataFrame) -> pd.DataFrame:
    """The exams where a choice can be right and can be wrong: the tumour may be chosen, and something else exists."""
    chosen_tumour = table.groupby("exam").apply(lambda e: bool((e["tumour"] & e["allowed"]).any()), include_groups=False)
    others = table.groupby("exam")["tumour"].apply(lambda t: bool((~t).any()))
    keep = chosen_tumour.index[chosen_tumour & others]
    return table[table["exam"].isin(keep)]


def pairs(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tumour − other) and (other − tumour) descriptor differences, labelled 1 and 0, and their weights.

    Each exam weighs the same whatever its number of candidates (an exam with 90 parenchymal specks
    would otherwise decide the ranker alone).
    """
    differences, weights = [], []
    for _, exam in table.groupby("exam"):
        x = exam[list(FEATURES)].to_numpy()
        positive = (exam["tumour"] & exam["allowed"]).to_numpy()
        negative = ~exam["tumour"].to_numpy()
        for p in x[positive]:
            differences.extend(p - x[negative])
            weights.extend([1.0 / (negative.sum() * positive.sum())] * int(negative.sum()))
    d, w = np.asarray(differences), np.asarray(weights)
    return np.concatenate([d, -d]), np.concatenate([np.ones(len(d)), np.zeros(len(d))]), np.concatenate([w, w])


def fit_ranker(table: pd.DataFrame, c: float = 1.0) -> CandidateRanker:
    """Standardise the descriptors over all candidates, then fit the pairwise logistic regression."""
    x = table[list(FEATURES)].to_numpy()
    mean, scale = x.mean(0), x.std(0)
    scale[scale == 0] = 1.0
    standard = table.copy()
    standard[list(FEATURES)] = (x - mean) / scale
    d, y, w = pairs(rankable(standard))
    model = LogisticRegression(C=c, fit_intercept=False, max_iter=1000).fit(d, y, sample_weight=w * len(w) / w.sum())
    return CandidateRanker(FEATURES, mean, scale, model.coef_[0])


def top_choice_hits(table: pd.DataFrame, score: np.ndarray) -> int:
    """Exams whose highest-scoring allowed candidate is the tumour."""
    scored = table.assign(score=score)[table["allowed"].to_numpy()]
    return int(scored.loc[scored.groupby("exam")["score"].idxmax(), "tumour"].sum())


def cross_validate(table: pd.DataFrame, c: float = 1.0, folds: int = 5) -> dict:
    """Tumours chosen by the ranker vs the mean-probability rule, out of fold, over the rankable exams."""
    table = rankable(table).reset_index(drop=True) if len(table) else table
    if table["exam"].nunique() < 2 * folds:
        raise ResponseAIError(f"only {table['exam'].nunique()} exams have the tumour and another candidate; the "
                              f"ranker needs at least {2 * folds} to be fitted and cross-validated: add exams")
    ranker_hits = 0
    for train, test in GroupKFold(folds).split(table, groups=table["exam"]):
        ranker = fit_ranker(table.iloc[train], c)
        held_out = table.iloc[test]
        ranker_hits += top_choice_hits(held_out, ranker.score(held_out[list(FEATURES)].to_numpy()))
    return {"exams": int(table["exam"].nunique()), "ranker_chosen": ranker_hits,
            "mean_probability_chosen": top_choice_hits(table, table["mean_p"].to_numpy()), "folds": folds, "C": c}


def choice_margins(table: pd.DataFrame, ranker: CandidateRanker) -> pd.DataFrame:
    """Per exam with the tumour among two or more allowed candidates: whether the ranker chose it, and the
    chosen candidate's score lead over the runner-up (exams with one candidate have no runner-up to compare)."""
    allowed = table[table["allowed"]].assign(score=lambda t: ranker.score(t[list(FEATURES)].to_numpy()))
    rows = []
    for exam, group in allowed.groupby("exam"):
        if len(group) < 2 or not group["tumour"].any():
            continue
        top = group.sort_values("score", ascending=False)
        rows.append({"exam": exam, "right": bool(top["tumour"].iloc[0]),
                     "margin": float(top["score"].iloc[0] - top["score"].iloc[1])})
    return pd.DataFrame(rows, columns=["exam", "right", "margin"])


def choose_close_margin(margins: pd.DataFrame, catch: float, step: float = 0.25, limit: float = 10.0) -> dict:
    """The smallest margin (a multiple of ``step``) below which at least ``catch`` of the wrong choices lie,
    with what it flags on these exams."""
    wrong = margins.loc[~margins["right"], "margin"].to_numpy()
    if not len(wrong):
        raise ResponseAIError("the ranker chose the tumour in every exam with a runner-up: no wrong choice to "
                              "set a close-call margin on (add exams)")
    for margin in np.arange(step, limit + step / 2, step):
        caught = int((wrong < margin).sum())
        if caught >= catch * len(wrong):
            flagged = int((margins["margin"] < margin).sum())
            return {"close_margin": float(margin), "exams": len(margins), "wrong_choices": len(wrong),
                    "wrong_flagged": caught, "flagged": flagged, "catch": catch}
    raise ResponseAIError(f"no margin up to {limit:g} catches {catch:.0%} of the wrong choices")


def read_table(path: Path, network: str) -> pd.DataFrame:
    """Descriptors written by an earlier run, refused when another network produced them."""
    table = pd.read_csv(path)
    if "network_sha256" not in table.columns or set(table["network_sha256"]) - {network}:
        raise ResponseAIError(f"{path} holds candidates of another segmentation network (or none recorded): "
                              "delete it to describe the exams again with this one")
    return table.drop(columns="network_sha256")


def main(argv: list[str] | None = None) -> int:
    """CLI entry point (``training.train breast candidates`` dispatches here)."""
    parser = argparse.ArgumentParser(prog="python -m training.train breast candidates", description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, nargs="+", required=True, help="cohort manifests (train/val rows are used)")
    parser.add_argument("--weights", type=Path, required=True, help="the segmentation network whose candidates are ranked")
    parser.add_argument("--out", type=Path, required=True, help="where the weights + card with the ranker go")
    parser.add_argument("--version", required=True, help="the new card version")
    parser.add_argument("--C", type=float, default=1.0, help="inverse L2 strength of the logistic regression")
    parser.add_argument("--table", type=Path, help="CSV of the candidate descriptors (written, or read when it exists)")
    parser.add_argument("--close-catch", type=float, help="set close_margin to catch this share of wrong choices (0-1)")
    parser.add_argument("--keep-ranker", action="store_true", help="keep the card's ranker (no fit; with --close-catch)")
    args = parser.parse_args(argv)
    if args.close_catch is not None and not 0 < args.close_catch <= 1:
        parser.error(f"--close-catch must be in (0, 1], got {args.close_catch:g}")
    network = sha256_of(args.weights)
    if args.table is not None and args.table.exists():
        table = read_table(args.table, network)
    else:
        table = pd.concat([describe_exams(m, args.weights) for m in args.manifest], ignore_index=True)
        if args.table is not None:
            args.table.parent.mkdir(parents=True, exist_ok=True)
            table.assign(network_sha256=network).to_csv(args.table, index=False)
    manifests = [str(m) for m in args.manifest]
    if args.keep_ranker:
        entry = read_card(args.weights, "segmentation").get("candidate_ranker")
        if entry is None:
            raise ResponseAIError(f"{args.weights}'s card has no candidate ranker to keep")
        ranker, training = card_ranker({"candidate_ranker": entry}), entry.get("training")
    else:
        scores = cross_validate(table, args.C)
        log.info("cross-validated over %d exams: ranker chose the tumour in %d, mean probability in %d",
                 scores["exams"], scores["ranker_chosen"], scores["mean_probability_chosen"])
        ranker = fit_ranker(table, args.C)
        training = {"manifests": manifests, "exams": int(table["exam"].nunique()),
                    "candidates": len(table), "cross_validation": scores}
    extra = {}
    if args.close_catch is not None:
        close = choose_close_margin(choice_margins(table, ranker), args.close_catch)
        log.info("close-call margin %g: %d of %d wrong choices under it, %d of %d exams flagged", close["close_margin"],
                 close["wrong_flagged"], close["wrong_choices"], close["flagged"], close["exams"])
        ranker = dataclasses.replace(ranker, close_margin=close["close_margin"])
        extra["close_margin_training"] = {"manifests": manifests, **close}
    copy_with_card(args.weights, args.out, "segmentation", version=args.version,
                   candidate_ranker={**ranker.to_card(), "training": training, **extra})
    log.info("wrote %s (ranker weights %s)", args.out,
             {name: round(float(w), 3) for name, w in zip(FEATURES, ranker.weights, strict=True)})
    return 0
