"""Train the breast tumour segmentation network from a cohort manifest.

``python -m training.train breast segmentation --manifest CSV --out DIR``:
trains on ``split == train`` rows, picks the epoch with the best tumour Dice on ``split == val``
(whole exams, sliding window, inference's own breast-region and candidate selection), writes
``DIR/breast_seg.safetensors`` + model card. Every exam is put on the canonical grid as at
inference. With an ``anatomy`` column (the phantom's label map) the network learns three classes,
background / breast / tumour, so inference can discard candidates outside the breasts.
Patches: around the tumour half of the time, on enhancing non-tumour anatomy (heart, vessels,
nodes, benign lesion) a quarter, anywhere a quarter; MONAI augmentation; loss Dice + CE (optionally
weighted on the breast around the tumour, ``--margin-weight``; exams optionally drawn by BPE rank).
Runs on a GPU when present and under ``torchrun`` (DDP); ``--resume`` continues a run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from monai.losses import DiceCELoss, DiceLoss
from safetensors.torch import load_file, save_file
from scipy import ndimage
from tqdm import tqdm

from monai.transforms import (
    Compose,
    RandAdjustContrastd,
    RandAffined,
    RandBiasFieldd,
    RandFlipd,
    RandGaussianNoised,
    RandGaussianSmoothd,
    RandScaleIntensityd,
    RandSimulateLowResolutiond,
)

from responseai.breast.constants import DCE_CHANNELS, MANIFEST_SCHEMA, REFERENCE_PHASE, REQUIRED_PHASES
from responseai.breast.preprocess import check_phases
from responseai.breast.segmentation.inference import (
    breast_region,
    bpe_index,
    network_input,
    predict_probabilities,
    select_tumour,
)
from responseai.breast.segmentation.model import DEFAULT_ARCHITECTURE, SPACING_MM, TASK, build_model
from responseai.image import Image
from responseai.io import read_image
from responseai.manifest import prepare_manifest, read_manifest
from responseai.metrics import dice
from responseai.spatial import to_canonical
from responseai.weights import load_model, save_model
from training.dce_augment import RandEnhancementd
from training.engine import (
    all_reduce_mean,
    init_distributed,
    load_checkpoint,
    parse_config,
    save_checkpoint,
    seed_everything,
    shutdown_distributed,
    unwrap,
    wrap_model,
)

log = logging.getLogger(__name__)

MODEL_NAME = "breast_seg"
MODEL_VERSION = "2.1.0"  # 2.1: contrast-uptake augmentation
POSTPROCESSING = ("breast region = 1-2 largest breast-class components, holes filled (3-class cards); tumour "
                  "candidates = components with probability >= threshold of at least 5 voxels, those whose 4 mm rim "
                  "lies mostly outside the breast region discarded, the highest-mean-probability one kept (or the "
                  "card's candidate_ranker's choice; with the card's extent_choice and a clinical tumour size, the "
                  "runner-up when the choice misses the size's limits by more than its factor and the runner-up fits "
                  "them; with its core_contrast, a choice above the size's upper limit first cut to the piece of that size "
                  "standing out in early uptake x enhancement ratio, when it fits), its outline completed (and trimmed) "
                  "by the card's outline_growth, its gaps closed when that has a close_share, holes filled as its "
                  "outline_fill says; with the extent_choice's grow_small, an outline below the size's lower limit "
                  "grown over the voxels within two radii of the size's typical tumour that enhance above half-way "
                  "between its median uptake and the 90th percentile of the breast one to two radii away, when it fits")
OUTPUT_MAPPING = ("the mask's indicator resampled linearly onto the input post1 grid and cut at 0.5; with the "
                  "card's outline_growth.input_band_mm, its edge redrawn there within that band at the growth's "
                  "edge level read from the input's own post1 - pre")
CLASSES = {2: ["background", "tumour"], 3: ["background", "breast", "tumour"]}
BREAST_LABELS = (1, 2)  # the phantom's anatomy map: left and right breast (docs/phantom-cohorts.md)
DISTRACTOR_LABELS = (3, 4, 5, 6, 7)  # heart, great vessels, internal mammary vessels, axillary nodes, benign lesion
MANIFEST_NEEDS = {"require": (*REQUIRED_PHASES, "split", "site", "mask"), "need_splits": ("train", "val")}


@dataclass(frozen=True)
class SegTrainConfig:
    """Everything a segmentation training run is given; also its command line."""

    manifest: Path = field(metadata={"help": "cohort manifest.csv (an `anatomy` column adds the breast class)"})
    out: Path = field(metadata={"help": "output folder for weights + card"})
    columns: str | None = field(default=None, metadata={
        "help": "map manifest names to the CSV's: mask=TUMOUR_MASK,split=SET or a JSON file"})
    epochs: int = 20
    steps: int = field(default=25, metadata={"help": "optimiser steps per epoch"})
    batch_size: int = 4
    patch: tuple[int, ...] = field(default=(32, 64, 64), metadata={"nargs": 3, "metavar": ("Z", "Y", "X")})
    lr: float = 2e-3
    seed: int = 0
    threads: int = field(default=0, metadata={"help": "torch CPU threads (0: torch's default)"})
    resume: bool = field(default=False, metadata={"help": "continue from OUT/checkpoints/last.pt"})
    n_val: int = field(default=16, metadata={"help": "validation exams scored each epoch (whole exams, sliding window)"})
    augment: bool = field(default=True, metadata={"help": "MONAI augmentation (flip, affine, bias field, gamma, blur, noise)"})
    cranio_caudal_flip: float = field(default=0.0, metadata={
        "help": "probability of flipping patches head <-> feet (0.5: half of them): site-specific heights of "
                "enhancing structures stop being cues"})
    low_resolution: float = field(default=0.0, metadata={
        "help": "probability of simulating a coarser acquisition (MONAI RandSimulateLowResolutiond, zoom 0.5-1)"})
    init: Path | None = field(default=None, metadata={"help": "start from these verified weights (.safetensors "
                                                                "with its card) instead of random ones"})
    breast_gain: tuple[float, ...] = field(default=(0.5, 2.0), metadata={
        "nargs": 2, "metavar": ("LOW", "HIGH"),
        "help": "range of the contrast-uptake augmentation's breast gain: above ~3 the parenchyma of a moderate or "
                "marked BPE exam enhances as strongly as a tumour, so the network must find the tumour's margin "
                "by its shape and kinetics, not by its brightness"})
    margin_weight: float = field(default=0.0, metadata={
        "help": "extra cross-entropy weight on breast voxels within --margin-mm of the tumour (0: plain Dice + CE): "
                "where an outline spills into enhancing parenchyma, those are the voxels it gets wrong"})
    margin_mm: float = field(default=10.0, metadata={"help": "width of that band outside the tumour (mm)"})
    bpe_sampling: float = field(default=0.0, metadata={
        "help": "draw exams with probability proportional to 1 + this x their background-enhancement rank (0-1, "
                "from the image: responseai's BPE index); 0: uniform"})


@dataclass
class SegCase:
    """One exam on the canonical grid: channels (C, Z, Y, X, float16) and the label (Z, Y, X).

    Labels: 0 background, 1 breast, 2 tumour when the manifest has anatomy maps, else 0 / 1 (tumour).
    ``negatives`` are voxels of anatomy that is not tumour but can look like it (heart, vessels,
    nodes, benign lesion, enhancing parenchyma of either breast): patches are drawn there too, so
    the network learns what a tumour is not.
    """

    patient_id: str
    channels: np.ndarray
    label: np.ndarray
    negatives: np.ndarray

    @property
    def bpe_percent(self) -> float:
        """The exam's background parenchymal enhancement index, as inference reports it (breast labels as region)."""
        if self.label.max() < 2:  # two-class labels: no breast region to measure it in
            return 0.0
        value = bpe_index(self.channels.astype(np.float32), self.label > 0, self.label == 2)
        return float(value) if value is not None else 0.0


def _labels(row: pd.Series, root: Path, grid: Image) -> tuple[np.ndarray, np.ndarray]:
    """Training label and hard-negative voxels on the canonical grid."""
    tumour = to_canonical(read_image(root / row["mask"], "mask"), grid, is_label=True).array > 0
    if not isinstance(row.get("anatomy"), str):
        return tumour.astype(np.uint8), np.zeros((0, 3), np.int32)
    anatomy = to_canonical(read_image(root / row["anatomy"], "anatomy"), grid, is_label=True).array
    label = np.where(np.isin(anatomy, BREAST_LABELS), 1, 0).astype(np.uint8)
    label[tumour] = 2
    negatives = np.argwhere(np.isin(anatomy, DISTRACTOR_LABELS + BREAST_LABELS) & ~tumour)
    return label, negatives[:: max(1, len(negatives) // 5000)].astype(np.int32)


def load_case(row: pd.Series, root: Path) -> SegCase:
    """Read one manifest row and bring it onto the canonical grid, exactly as inference does."""
    phases: dict[str, Image] = {name: read_image(root / row[name], name) for name in ("pre", "post1", "post2")
                                if isinstance(row.get(name), str)}
    channels, grid = network_input(check_phases(phases), SPACING_MM)
    label, negatives = _labels(row, root, grid)
    return SegCase(str(row["patient_id"]), channels.astype(np.float16), label, negatives)


def load_split(manifest: Path, split: str, limit: int | None = None) -> list[SegCase]:
    """The cases of one split held in memory (float16: ≈ 12 MB per bilateral exam); paths come back absolute."""
    rows = read_manifest(manifest, MANIFEST_SCHEMA, require=MANIFEST_NEEDS["require"]).rows(split)
    rows = rows.head(limit) if limit else rows
    progress = tqdm(rows.iterrows(), total=len(rows), desc=f"loading {split}")
    return [load_case(row, manifest.parent) for _, row in progress]


def _augmentation(patch: tuple[int, int, int], low_resolution: float = 0.0, cranio_caudal_flip: float = 0.0,
                  breast_gain: tuple[float, float] = (0.5, 2.0)) -> Compose:
    """Site, scanner and pose variation the phantom sites do not cover (MONAI dictionary transforms).

    Beyond pose and gain: a coarser or blurrier scanner (Gaussian smoothing, in-plane pixels up
    to 1.6 mm and thick slices look like this after resampling), a noisier one, and a contrast
    bolus that arrives earlier or later (each channel scaled on its own, which changes the
    post/pre ratios a little, as timing does). ``low_resolution`` > 0 also down- and re-samples
    patches (zoom 0.5–1): thick-slice sagittal or coarse oblique series look like this on the
    canonical grid. ``cranio_caudal_flip`` > 0 mirrors that share of patches head ↔ feet as well, so that the height
    at which a site puts an enhancing non-tumour structure (the phantom's coil artefact) cannot be
    learnt as what makes it harmless.
    """
    keys = ("image", "label")
    return Compose([
        RandEnhancementd("image", "label", breast=breast_gain),  # before any resampling: the labels are exact here
        RandFlipd(keys, prob=0.5, spatial_axis=2),  # left ↔ right: a tumour is as likely in either breast
        *([RandFlipd(keys, prob=cranio_caudal_flip, spatial_axis=0)] if cranio_caudal_flip else []),
        RandAffined(keys, prob=0.5, rotate_range=(0.17, 0.1, 0.1), scale_range=(0.15, 0.15, 0.15),
                    mode=("bilinear", "nearest"), padding_mode="zeros", spatial_size=patch),
        RandBiasFieldd("image", prob=0.4, coeff_range=(0.0, 0.4)),
        RandGaussianSmoothd("image", prob=0.3, sigma_x=(0.2, 1.0), sigma_y=(0.3, 1.2), sigma_z=(0.3, 1.2)),
        RandAdjustContrastd("image", prob=0.4, gamma=(0.7, 1.5)),
        RandScaleIntensityd("image", prob=0.5, factors=0.25),
        RandScaleIntensityd("image", prob=0.4, factors=0.12, channel_wise=True),
        RandGaussianNoised("image", prob=0.4, std=0.05),
        *([RandSimulateLowResolutiond("image", prob=low_resolution, zoom_range=(0.5, 1.0))] if low_resolution else []),
    ])


def sample_patch(case: SegCase, patch: tuple[int, int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A patch centred on a tumour voxel (1/2), on non-tumour breast or enhancing anatomy (1/4) or anywhere (1/4)."""
    shape = np.array(case.label.shape)
    size = np.minimum(np.array(patch), shape)
    draw = rng.random()
    if draw < 0.5:
        voxels = np.argwhere(case.label == case.label.max())
        centre = voxels[rng.integers(len(voxels))]
    elif draw < 0.75 and len(case.negatives):
        centre = case.negatives[rng.integers(len(case.negatives))]
    else:
        centre = rng.integers(0, shape)
    start = np.clip(centre - size // 2, 0, shape - size)
    box = tuple(slice(int(s), int(s + n)) for s, n in zip(start, size))
    padding = [(0, int(p - n)) for p, n in zip(patch, size)]
    image = np.pad(case.channels[(slice(None), *box)].astype(np.float32), [(0, 0), *padding])
    return image, np.pad(case.label[box], padding)


def exam_weights(cases: list[SegCase], bpe_sampling: float) -> np.ndarray | None:
    """Sampling probabilities favouring exams with more background enhancement (None: uniform).

    Why: moderate and marked BPE are a third of exams but where the outlines spill; ranks, not the
    index itself, so one extreme exam cannot dominate.
    """
    if bpe_sampling <= 0:
        return None
    ranks = pd.Series([case.bpe_percent for case in cases]).rank(pct=True).to_numpy()
    weights = 1.0 + bpe_sampling * ranks
    return weights / weights.sum()


def margin_band(label: torch.Tensor, margin_mm: float) -> torch.Tensor:
    """Breast voxels (label 1) within ``margin_mm`` outside the tumour (label 2), per patch: (B, 1, Z, Y, X) bool."""
    spacing_zyx = tuple(SPACING_MM[::-1])
    bands = []
    for patch in label[:, 0].cpu().numpy():
        tumour = patch == 2
        band = np.zeros(patch.shape, bool)
        if tumour.any():
            band = (ndimage.distance_transform_edt(~tumour, sampling=spacing_zyx) <= margin_mm) & (patch == 1)
        bands.append(band)
    return torch.from_numpy(np.stack(bands)[:, None]).to(label.device)


class MarginWeightedDiceCE(torch.nn.Module):
    """Dice + cross-entropy whose CE weighs the breast band around the tumour ``1 + weight`` times.

    Normalised by the total weight, so the loss keeps the scale of MONAI's DiceCELoss (which it equals at weight 0).
    """

    def __init__(self, weight: float, margin_mm: float) -> None:
        super().__init__()
        self.weight, self.margin_mm = weight, margin_mm
        self.dice = DiceLoss(to_onehot_y=True, softmax=True)

    def forward(self, logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        ce = torch.nn.functional.cross_entropy(logits, label[:, 0], reduction="none")[:, None]
        weights = 1.0 + self.weight * margin_band(label, self.margin_mm).float()
        return self.dice(logits, label) + (ce * weights).sum() / weights.sum()


def make_batch(cases: list[SegCase], patch: tuple[int, int, int], batch_size: int, rng: np.random.Generator,
               device: torch.device, augment: Compose | None,
               weights: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of (augmented) patches from random cases (drawn with replacement: epochs are step counts)."""
    images, labels = [], []
    chosen = rng.integers(0, len(cases), batch_size) if weights is None else rng.choice(len(cases), batch_size, p=weights)
    for i in chosen:
        image, label = sample_patch(cases[i], patch, rng)
        if augment is not None:
            augment.set_random_state(int(rng.integers(2**31)))
            out = augment({"image": torch.from_numpy(image), "label": torch.from_numpy(label[None].astype(np.float32))})
            image, label = np.asarray(out["image"]), np.asarray(out["label"])[0]
        images.append(image)
        labels.append(np.rint(label))
    return (torch.from_numpy(np.stack(images).astype(np.float32)).to(device),
            torch.from_numpy(np.stack(labels)[:, None].astype(np.int64)).to(device))


def validation_dice(model: torch.nn.Module, cases: list[SegCase], patch: tuple[int, int, int],
                    threshold: float = 0.5) -> float:
    """Mean tumour Dice over whole validation exams, with inference's own candidate selection."""
    model.eval()
    scores = []
    for case in cases:
        probabilities = predict_probabilities(model, case.channels.astype(np.float32), patch)
        chosen, *_ = select_tumour(probabilities[-1], threshold, breast_region(probabilities), spacing_xyz=SPACING_MM)
        scores.append(dice(chosen, case.label == case.label.max()))
    model.train()
    return float(np.mean(scores)) if scores else float("nan")


def initial_model(architecture: dict, init: Path | None) -> torch.nn.Module:
    """A fresh network, or one warm-started from verified weights of the same architecture."""
    if init is None:
        return build_model({"architecture": architecture})
    model, card = load_model(init, build_model, expected_task=TASK)
    if card["architecture"] != architecture:
        raise ValueError(f"--init {init}: its architecture {card['architecture']} differs from this run's "
                         f"{architecture}")
    log.info("warm start from %s (val Dice %s)", init, card.get("metrics", {}).get("val_dice"))
    return model


def cohort_seed(manifest: Path) -> int | None:
    """The phantom seed from ``cohort.json`` next to the manifest (None for a real cohort).

    Stored in the card so an evaluation can refuse to report on the training seed.
    """
    meta = Path(manifest).parent / "cohort.json"
    if not meta.exists():
        return None
    try:
        return int(json.loads(meta.read_text(encoding="utf-8"))["seed"])
    except (ValueError, KeyError, TypeError):
        return None


def build_card(config: SegTrainConfig, architecture: dict, n_train: int, n_val: int, best_dice: float,
               sites: list[str]) -> dict:
    """The model card: everything inference needs (spacing, patch, threshold) and provenance."""
    digest = hashlib.sha256(Path(config.manifest).read_bytes()).hexdigest()[:16]
    return {
        "name": MODEL_NAME, "version": MODEL_VERSION, "task": TASK,
        "architecture": architecture,
        "inputs": {"phases": ["pre", "post1", "post2 (optional: post1 used when absent)"],
                   "channels": list(DCE_CHANNELS), "spacing_mm": list(SPACING_MM),
                   "patch_size": list(config.patch), "reference_phase": REFERENCE_PHASE},
        "classes": CLASSES[architecture["out_channels"]], "threshold": 0.5,
        "preprocessing": {"resample": f"linear onto the canonical grid: axial, LPS-aligned, {SPACING_MM} mm (x, y, z)",
                          "intensity": "every channel divided by the 99.5th percentile of the pre phase",
                          "postprocessing": POSTPROCESSING,
                          "output": OUTPUT_MAPPING,
                          "augmentation": f"contrast uptake (tumour x0.6-2.8, breast x{config.breast_gain[0]:g}-{config.breast_gain[1]:g}, exam x0.7-1.4), MONAI: L-R flip, affine (±10°, ±15 %), bias field, Gaussian smoothing, "
                                          "gamma, intensity scale (global and per channel), Gaussian noise"
                                          + (f", head-feet flip (p {config.cranio_caudal_flip:g})" if config.cranio_caudal_flip else "")
                                          + (f", simulated low resolution (p {config.low_resolution:g}, zoom 0.5-1)"
                                             if config.low_resolution else "") if config.augment else "none"},
        "training_data": {"manifest": str(config.manifest), "init": str(config.init) if config.init else None, "manifest_sha256_16": digest, "n_train": n_train,
                          "n_val": n_val, "sites": sites, "cohort_seed": cohort_seed(config.manifest),
                          "epochs": config.epochs, "steps_per_epoch": config.steps, "batch_size": config.batch_size,
                          "lr": config.lr, "seed": config.seed,
                          **({"loss": f"Dice + CE with the breast band within {config.margin_mm:g} mm of the tumour "
                                      f"weighted x{1 + config.margin_weight:g}"} if config.margin_weight > 0 else {}),
                          **({"exam_sampling": f"probability proportional to 1 + {config.bpe_sampling:g} x BPE-index rank"}
                             if config.bpe_sampling > 0 else {})},
        "metrics": {"val_dice": round(best_dice, 4)},
    }


def train(config: SegTrainConfig) -> Path | None:
    """Run (or resume) training; returns the written weights path on rank 0, None elsewhere."""
    info = init_distributed()
    seed_everything(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)
    train_cases = load_split(config.manifest, "train")
    val_cases = load_split(config.manifest, "val", config.n_val)
    if not train_cases or not val_cases:
        raise ValueError(f"{config.manifest}: needs rows with split == train and split == val "
                         f"(found {len(train_cases)} and {len(val_cases)}); the best epoch is chosen on val")
    architecture = {**DEFAULT_ARCHITECTURE, "out_channels": int(max(c.label.max() for c in train_cases)) + 1}
    model = wrap_model(initial_model(architecture, config.init), info)
    augment = (_augmentation(tuple(config.patch), config.low_resolution, config.cranio_caudal_flip,
                             tuple(config.breast_gain)) if config.augment else None)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    loss_fn = (MarginWeightedDiceCE(config.margin_weight, config.margin_mm) if config.margin_weight > 0
               else DiceCELoss(to_onehot_y=True, softmax=True))
    weights = exam_weights(train_cases, config.bpe_sampling)
    checkpoint, best_path = config.out / "checkpoints" / "last.pt", config.out / "checkpoints" / "best.safetensors"
    state = {"epoch": 0, "best_dice": -1.0}
    if config.resume and checkpoint.exists():
        state = load_checkpoint(checkpoint, model, optimizer)
    patch = tuple(config.patch)
    for epoch in range(state["epoch"], config.epochs):
        # Patch sampling depends only on (seed, rank, epoch): a resumed run draws the same
        # patches as an uninterrupted one, so --resume does not change the shipped weights.
        rng = np.random.default_rng([config.seed, info.rank, epoch])
        losses = []
        for _ in tqdm(range(config.steps), desc=f"epoch {epoch + 1}/{config.epochs}", disable=not info.is_main):
            images, labels = make_batch(train_cases, patch, config.batch_size, rng, info.device, augment, weights)
            optimizer.zero_grad()
            loss = loss_fn(model(images), labels)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        epoch_loss = all_reduce_mean(float(np.mean(losses)), info)
        val = validation_dice(unwrap(model), val_cases, patch) if info.is_main else 0.0
        if info.is_main and val > state["best_dice"]:
            best_path.parent.mkdir(parents=True, exist_ok=True)
            save_file({k: v.detach().cpu().contiguous() for k, v in unwrap(model).state_dict().items()}, str(best_path))
        state = {"epoch": epoch + 1, "best_dice": max(state["best_dice"], val)}
        if info.is_main:
            log.info("epoch %d loss %.4f val Dice %.4f (best %.4f)", epoch + 1, epoch_loss, val, state["best_dice"])
            save_checkpoint(checkpoint, model, optimizer, state)
    if not info.is_main:
        return None
    best = build_model({"architecture": architecture})
    best.load_state_dict(load_file(str(best_path)))
    sites = sorted(pd.read_csv(config.manifest).query("split == 'train'")["site"].unique().tolist())
    card = build_card(config, architecture, len(train_cases), len(val_cases), state["best_dice"], sites)
    out = config.out / f"{MODEL_NAME}.safetensors"
    save_model(best, card, out)
    log.info("wrote %s (val Dice %.4f)", out, state["best_dice"])
    return out


def main(argv: list[str] | None = None) -> int:
    """CLI entry point (``training.train breast segmentation`` dispatches here)."""
    config = parse_config(SegTrainConfig, argv, "python -m training.train breast segmentation", __doc__.splitlines()[0])
    manifest = prepare_manifest(config.manifest, MANIFEST_SCHEMA, config.columns, config.out, **MANIFEST_NEEDS)
    config = dataclasses.replace(config, manifest=manifest)
    try:
        train(config)
    finally:
        shutdown_distributed()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
