"""Choose and write the segmentation card's outline growth (``responseai.breast.segmentation.outline``) and fill.

``--grid`` scores every (share, margin) pair on development exams: the network and the candidate
choice run once per exam, then each growth of the chosen component is compared with the true
mask on the network's grid (mean Dice over the exams where the chosen component touches the
tumour, and over all exams); with ``--fill slices`` each is scored with its holes filled slice by
slice too; with ``--background P …`` the half-way edge (``OutlineGrowth.background_percentile``) at
share 0.6, 3 mm is scored for each percentile and shell too. Without ``--grid`` the given growth and/or
the fill are written into a copy of the card with a new version; the weights are copied unchanged
(same sha256).

Usage:
    python -m training.train breast outline --weights W --dev DEV.csv[:split] … --grid
    python -m training.train breast outline --weights W --out W2 --version 2.3.0 --share 0.6 --margin-mm 3 \
        --chosen-on "why these values"
    python -m training.train breast outline --weights W --out W2 --version 2.5.1 --fill slices
    python -m training.train breast outline --weights W --out W2 --version 2.7.0 --share 0.6 --margin-mm 3 \
        --background-percentile 90 --background-shell-mm 3 12 --fill slices --chosen-on "why"
    python -m training.train breast outline --weights W --out W2 --version 2.9.0 --share 0.6 --margin-mm 3 \
        --background-percentile 90 --background-shell-mm 3 12 --input-band-mm 3 --close-share 0.3 --fill slices
"""

from __future__ import annotations

import argparse
import itertools
import logging
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from responseai.breast.preprocess import check_phases
from responseai.breast.segmentation.candidates import CandidateRanker, choose, find_candidates
from responseai.breast.segmentation.extent import ExtentChoice
from responseai.breast.segmentation.inference import OUTLINE_FILLS, outline, segment_canonical
from responseai.breast.segmentation.outline import OutlineGrowth
from responseai.io import read_image, resample_to
from responseai.metrics import dice
from responseai.weights import copy_with_card, read_card
from training.breast_seg import OUTPUT_MAPPING, POSTPROCESSING

log = logging.getLogger(__name__)
SHARES = (0.4, 0.6, 0.8)
MARGINS_MM = (3.0, 6.0)
BACKGROUND_SHELLS_MM = ((2.0, 8.0), (3.0, 12.0), (3.0, 20.0))


def exam_scores(manifest: Path, row: pd.Series, weights: Path, growths: list[OutlineGrowth | None],
                fills: tuple[bool, ...] = (False,)) -> dict:
    """Dice of each growth of the chosen component against the true mask, on the network grid."""
    phases = {p: read_image(manifest.parent / row[p], p) for p in ("pre", "post1", "post2") if isinstance(row.get(p), str)}
    seg = segment_canonical(check_phases(phases), weights)
    truth = resample_to(read_image(manifest.parent / row["mask"], "mask"), seg.grid, is_label=True).array > 0
    breast = seg.probabilities[1] if len(seg.probabilities) > 2 else None
    # the candidates are found, described and ranked once; only the outline differs between growths
    candidates = find_candidates(seg.probabilities[-1], seg.threshold, seg.region,
                                 seg.channels if seg.ranker else None, seg.grid.spacing, breast)
    best = choose(candidates, seg.ranker)
    component = candidates.labels == best if best is not None else None
    scores = {"patient_id": row["patient_id"], "found": False}
    for growth, slices in itertools.product(growths, fills):
        mask = (None if component is None
                else outline(component, seg.channels, seg.region, seg.grid.spacing, growth, slices,
                             seg.probabilities[-1]))
        scores[label(growth, slices)] = dice(mask, truth) if mask is not None and mask.any() else 0.0
        if growth is None and not slices:  # "found" as the shipped rule without growth reports it
            scores["found"] = mask is not None and bool((mask.astype(bool) & truth).any())
    return scores


def label(growth: OutlineGrowth | None, slices: bool = False) -> str:
    name = "as found" if growth is None else f"share {growth.share:g}, {growth.margin_mm:g} mm"
    if growth is not None and growth.background_percentile is not None:
        inner, outer = growth.background_shell_mm
        name += f", half-way to p{growth.background_percentile:g} at {inner:g}-{outer:g} mm"
    return f"{name}, slices filled" if slices else name


def grid_table(dev: list[str], weights: Path, fill_slices: bool = False,
               backgrounds: tuple[float, ...] = ()) -> pd.DataFrame:
    """Per-exam Dice of the component as found and of every grid growth, over the development manifests."""
    growths = [None] + [OutlineGrowth(s, m) for s, m in itertools.product(SHARES, MARGINS_MM)]
    growths += [OutlineGrowth(0.6, 3.0, p, shell) for p, shell in itertools.product(backgrounds, BACKGROUND_SHELLS_MM)]
    fills = (False, True) if fill_slices else (False,)
    rows = []
    for spec in dev:
        path, _, split = spec.partition(":")
        manifest = Path(path)
        frame = pd.read_csv(manifest)
        frame = frame[frame["split"] == split] if split else frame
        for _, row in tqdm(frame.iterrows(), total=len(frame), desc=f"{manifest.parent.name} outlines"):
            rows.append({"set": spec, **exam_scores(manifest, row, weights, growths, fills)})
    return pd.DataFrame(rows)


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean Dice per set and growth, over all exams and over the exams where the tumour was found."""
    columns = [c for c in table.columns if c not in ("set", "patient_id", "found")]
    found = table[table["found"]]
    return pd.concat({"all exams": table.groupby("set")[columns].mean(),
                      "found": found.groupby("set")[columns].mean()}).round(3)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point (``training.train breast outline`` dispatches here)."""
    parser = argparse.ArgumentParser(prog="python -m training.train breast outline", description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, required=True, help="segmentation weights (its card is read)")
    parser.add_argument("--grid", action="store_true", help="score the share × margin grid on --dev and stop")
    parser.add_argument("--dev", nargs="+", default=[], help="development manifests, optionally path.csv:split")
    parser.add_argument("--csv", type=Path, help="with --grid: write the per-exam table here")
    parser.add_argument("--out", type=Path, help="where the weights + card with the growth go")
    parser.add_argument("--version", help="the new card version")
    parser.add_argument("--share", type=float, help="share of the component's median enhancement")
    parser.add_argument("--margin-mm", type=float, help="how far from the component voxels may join")
    parser.add_argument("--background-percentile", type=float, help="edge half-way to this percentile of the "
                        "uptake around the component (absent: share of its median only)")
    parser.add_argument("--background-shell-mm", type=float, nargs=2, default=(3.0, 12.0), metavar=("INNER", "OUTER"),
                        help="where around the component the background is read")
    parser.add_argument("--background", type=float, nargs="+", default=(), metavar="P",
                        help="with --grid: also score the half-way edge to these percentiles")
    parser.add_argument("--input-band-mm", type=float, help="redraw the edge on the input grid within this band "
                        "of the mapped outline, at the same level read there (absent: the outline as mapped)")
    parser.add_argument("--close-share", type=float, help="close the outline's gaps with a ball of this share of its "
                        "equivalent-sphere radius before holes are filled (absent: not)")
    parser.add_argument("--fill", choices=OUTLINE_FILLS, help="holes filled in 3-D, or slice by slice first; with "
                        "--grid, 'slices' scores both")
    parser.add_argument("--ranker-clip-z", type=float, help="the card's candidate ranker reads each standardised "
                        "feature clipped to +-Z (no extrapolation past the training candidates' range)")
    parser.add_argument("--extent-choice", type=float, metavar="FACTOR", help="the runner-up replaces a choice that "
                        "misses the clinical size's limits by more than FACTOR when it fits them (card extent_choice)")
    parser.add_argument("--extent-choice-above", type=float, metavar="FACTOR", help="with --extent-choice: the "
                        "factor above the upper limit (default: the same)")
    parser.add_argument("--core-contrast", type=float, metavar="RATIO", help="with --extent-choice: a choice above "
                        "the clinical size's upper limit is first cut to the piece of that size standing out by RATIO "
                        "in tumour-likeness over the rest of it, when the piece fits (absent: not)")
    parser.add_argument("--grow-small", action="store_true", help="with --extent-choice: a choice below the clinical "
                        "size's lower limit is grown over the enhancing tumour of that size it is part of, when the "
                        "grown outline fits (absent: not)")
    parser.add_argument("--grow-below", type=float, metavar="RATIO", help="with --grow-small: try the growth on a "
                        "choice below RATIO x the clinical size's volume too (absent: below the lower limit only)")
    parser.add_argument("--chosen-on", default="", help="recorded in the card: where the values were chosen")
    args = parser.parse_args(argv)
    if args.grid:
        if not args.dev:
            parser.error("--grid needs --dev manifests")
        table = grid_table(args.dev, args.weights, args.fill == "slices", tuple(args.background))
        if args.csv is not None:
            args.csv.parent.mkdir(parents=True, exist_ok=True)
            table.to_csv(args.csv, index=False)
        log.info("mean Dice per development set:\n%s", summary(table).to_string())
        return 0
    if None in (args.out, args.version) or (args.share is None) != (args.margin_mm is None) or (
            args.share is None and args.fill is None and args.ranker_clip_z is None and args.extent_choice is None):
        parser.error("writing a card needs --out, --version and --share with --margin-mm, --fill, --ranker-clip-z, "
                     "--extent-choice or several")
    if (args.background_percentile, args.input_band_mm, args.close_share) != (None, None, None) and args.share is None:
        parser.error("--background-percentile, --input-band-mm and --close-share are part of a growth: give --share "
                     "and --margin-mm with them")
    entries = {}
    if args.share is not None:
        try:
            growth = OutlineGrowth(args.share, args.margin_mm, args.background_percentile,
                                   tuple(args.background_shell_mm), args.input_band_mm, args.close_share)
        except ValueError as error:
            parser.error(str(error))
        entries["outline_growth"] = {**growth.to_card(), "chosen_on": args.chosen_on}
    if args.fill is not None:
        entries["outline_fill"] = args.fill
    if args.ranker_clip_z is not None:
        card = read_card(args.weights, expected_task="segmentation")
        if "candidate_ranker" not in card:
            parser.error(f"{args.weights}'s card has no candidate ranker to clip")
        try:
            CandidateRanker.from_card({**card["candidate_ranker"], "clip_z": args.ranker_clip_z})
        except ValueError as error:
            parser.error(str(error))
        entries["candidate_ranker"] = {**card["candidate_ranker"], "clip_z": args.ranker_clip_z}
    if ((args.extent_choice_above, args.core_contrast) != (None, None) or args.grow_small) and args.extent_choice is None:
        parser.error("--extent-choice-above, --core-contrast and --grow-small need --extent-choice")
    if args.grow_below is not None and not args.grow_small:
        parser.error("--grow-below needs --grow-small")
    if args.extent_choice is not None:
        try:
            entries["extent_choice"] = {**ExtentChoice(args.extent_choice, args.extent_choice_above,
                                                         args.core_contrast, args.grow_small, args.grow_below).to_card(),
                                        "chosen_on": args.chosen_on}
        except ValueError as error:
            parser.error(str(error))
    # the card's description of the pipeline is refreshed with it: a card written by an older training
    # run would otherwise describe an older mapping back and postprocessing than the code now runs
    preprocessing = {**read_card(args.weights, expected_task="segmentation").get("preprocessing", {}),
                     "postprocessing": POSTPROCESSING, "output": OUTPUT_MAPPING}
    copy_with_card(args.weights, args.out, "segmentation", version=args.version, preprocessing=preprocessing,
                   **entries)
    log.info("wrote %s with %s", args.out, entries)
    return 0
