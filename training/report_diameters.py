"""The three diameters a radiology report gives, for phantom exams, and the ellipsoid limits they imply.

The phantoms' forms carry one size (``tumour_size_mm``). A report gives three perpendicular
diameters of the mass; this measures them on the true mask as the diameters of its moment
ellipsoid (:func:`responseai.breast.segmentation.extent.principal_diameters_mm`: spicules left out,
as a radiologist leaves them out), each with a reader's measuring error (× lognormal, σ = 0.1, i.e.
about ± 10 %, seeded by the patient id), and writes ``manifest-diameters.csv`` beside the manifest
with the three in ``tumour_size_mm``, ``tumour_size_2_mm`` and ``tumour_size_3_mm`` (largest first).
The segmentation evaluation run on it scores the mask-extent caution against their ellipsoid.

``--write-side`` adds the side a biopsy report gives (``laterality``: the patient's side of the true mask's
centre, as the segmentation reads sides) and writes ``manifest-side.csv`` (the form's one size and the side) and
``manifest-diameters-side.csv`` (three diameters and the side): the evaluation run on them scores the
tumour search kept to the named breast. It also writes ``manifest-wrongside.csv`` (one size and the *other*
breast: a form typed wrong), on which the evaluation counts how often the user is told.

``--limits`` prints, over the given (training) manifests, how much of its reported ellipsoid a true
tumour fills, and the limits the rule gives: 0.75 × the 5th percentile to 1.25 × the maximum.

Usage:
    python -m training.report_diameters --manifest M [M ...] [--limits] [--write] [--write-side]
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from responseai.breast.segmentation.extent import ellipsoid_volume_ml, principal_diameters_mm
from responseai.breast.segmentation.side import OTHER_SIDE, side_of
from responseai.io import read_image

log = logging.getLogger(__name__)
OUTPUT_NAME = "manifest-diameters.csv"
SIDE_NAMES = ("manifest-side.csv", "manifest-diameters-side.csv")  # one size and the side; three diameters and the side
WRONG_SIDE_NAME = "manifest-wrongside.csv"  # one size and the other breast: a form typed wrong


MEASURING_ERROR = 0.1  # σ of the log of each diameter: a reader's ± 10 %


def report_diameters(mask_path: Path, patient_id: str, measuring_error: float = MEASURING_ERROR
                     ) -> tuple[tuple[float, float, float], float, str | None]:
    """(the three reported diameters, largest first; the true tumour's fill of their ellipsoid; its side); NaN and
    no side for an empty mask (a phantom tumour the field of view missed: there is nothing to measure)."""
    mask = read_image(mask_path, "mask")
    if not mask.array.any():
        log.warning("%s: the true mask is empty; its diameters and side are left unknown", patient_id)
        return (math.nan, math.nan, math.nan), math.nan, None
    seed = int.from_bytes(hashlib.sha256(patient_id.encode()).digest()[:8], "little")
    error = np.exp(np.random.default_rng(seed).normal(0.0, measuring_error, 3))
    diameters = sorted((round(d * e, 1) for d, e in zip(principal_diameters_mm(mask), error)), reverse=True)
    return (diameters[0], diameters[1], diameters[2]), mask.volume_ml() / ellipsoid_volume_ml(*diameters), side_of(mask)


def measure(manifest: Path, measuring_error: float = MEASURING_ERROR) -> pd.DataFrame:
    """The manifest with the reported diameters in place of the form's size, the true tumour's fill (``_fill``) and
    its side (``_side``)."""
    frame = pd.read_csv(manifest)
    rows = [report_diameters(manifest.parent / row["mask"], str(row["patient_id"]), measuring_error)
            for _, row in tqdm(frame.iterrows(), total=len(frame), desc=f"measuring {manifest.parent.name}")]
    diameters = np.asarray([r[0] for r in rows]).reshape(-1, 3)
    return frame.assign(tumour_size_mm=diameters[:, 0], tumour_size_2_mm=diameters[:, 1],
                        tumour_size_3_mm=diameters[:, 2], _fill=[r[1] for r in rows], _side=[r[2] for r in rows])


def limits(fills: np.ndarray) -> tuple[float, float]:
    """0.75 × the 5th percentile, 1.25 × the maximum of the true tumours' fills."""
    return round(0.75 * float(np.percentile(fills, 5)), 2), round(1.25 * float(np.max(fills)), 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.report_diameters", description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, nargs="+", required=True, help="phantom manifests with true masks")
    parser.add_argument("--limits", action="store_true", help="print the fill distribution and the limits it gives")
    parser.add_argument("--write", action="store_true", help=f"write {OUTPUT_NAME} beside each manifest")
    parser.add_argument("--write-side", action="store_true",
                        help=f"write {' and '.join(SIDE_NAMES)} (the true tumour's side in laterality) and "
                             f"{WRONG_SIDE_NAME} (the other side) beside each manifest")
    parser.add_argument("--measuring-error", type=float, default=MEASURING_ERROR,
                        help="σ of each diameter's log (a reader's error); another value writes "
                             "manifest-diameters-error<σ>.csv, to see how the check fares with a rougher reader")
    args = parser.parse_args(argv)
    measured = {m: measure(m, args.measuring_error) for m in args.manifest}
    name = OUTPUT_NAME if args.measuring_error == MEASURING_ERROR else f"manifest-diameters-error{args.measuring_error:g}.csv"
    for manifest, frame in measured.items():
        reported = frame.drop(columns=["_fill", "_side"])
        written = {name: reported} if args.write else {}
        if args.write_side:  # the form's one size (the manifest as it is) and the three diameters, each with the side
            written.update(zip(SIDE_NAMES, (pd.read_csv(manifest).assign(laterality=frame["_side"]),
                                            reported.assign(laterality=frame["_side"]))))
            written[WRONG_SIDE_NAME] = pd.read_csv(manifest).assign(laterality=frame["_side"].map(OTHER_SIDE))
        for output, rows in written.items():
            rows.to_csv(manifest.parent / output, index=False)
            log.info("wrote %s", manifest.parent / output)
    if args.limits:
        fills = np.concatenate([f["_fill"].to_numpy() for f in measured.values()])
        fills = fills[np.isfinite(fills)]  # empty true masks have nothing to fill
        log.info("true tumours fill their reported ellipsoid %.2f (5th pct) / %.2f (median) / %.2f (max) over %d "
                 "exams; limits %s", np.percentile(fills, 5), np.median(fills), fills.max(), len(fills), limits(fills))
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    raise SystemExit(main())
