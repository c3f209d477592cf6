"""Train the breast pCR model: the three steps of seed 000, or the single-stage baseline.

Stepwise (``--mode stepwise``), each step initialised from the last:

1. ``global``    image only, global average pooling, no attention;
2. ``attention`` + spatial attention, loss ``L_cls + λ_att·KL(m̂‖a)`` (m̂: dilated tumour mask
   on the feature grid);
3. ``clinical``  + clinical MLP fused with the attended feature; the image encoder is
   fine-tuned at ``--encoder-lr-factor`` × the learning rate.

Single stage (``--mode single-stage``): the full step-3 architecture trained at once with no
guidance (λ_att = 0) for as many epochs as the three steps together: the non-guided baseline
the paper compares against.

Class imbalance: every epoch draws a class-balanced sample of the training rows (the same
draw on every rank), the loss is plain BCE, and because balanced sampling trains the model
under a 50 % prior, a logit offset ``log(π/(1−π))`` (π: training prevalence) is stored in the
card and added at inference — the textbook prior correction, so probabilities stay calibrated
to the training prevalence. The decision threshold maximises Youden's J on ``split == val``
rows only; test / external rows are never read here.

Runs plainly, on a GPU when present, or under ``torchrun --nproc_per_node N`` (DDP; gloo on
CPU). ``--resume`` continues from ``OUT/checkpoints``.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from tqdm import tqdm

from responseai.clinical import records_from_frame
from responseai.io import read_image
from responseai.metrics import binary_report, youden_threshold
from responseai.models.pcr import (
    PCRNet,
    build_model,
    guidance_loss,
    inherit_weights,
    make_config,
    mask_target,
    PreparedCase,
    prepare_case,
)
from responseai.preprocess import DCE_CHANNELS, ClinicalEncoder
from responseai.weights import save_model
from training.engine import (
    DistInfo,
    all_reduce_mean,
    init_distributed,
    load_checkpoint,
    save_checkpoint,
    seed_everything,
    shutdown_distributed,
    unwrap,
    wrap_model,
)

log = logging.getLogger(__name__)

MODEL_NAME = "breast_pcr"
MODEL_VERSION = "1.0.0"
CLASSES = ["no pCR", "pCR"]
THRESHOLD_RULE = "max Youden J (sensitivity + specificity − 1) on split == 'val' rows only"


@dataclass(frozen=True)
class StepSpec:
    """One training step: which modules exist, how it is optimised."""

    name: str
    tag: str  # file suffix of the snapshot this step leaves
    attention: bool
    clinical: bool
    lambda_att: float
    epochs: int
    encoder_lr_factor: float = 1.0


@dataclass
class Cohort:
    """Preprocessed crops cached in memory: each case is read and resampled exactly once."""

    frame: pd.DataFrame
    images: np.ndarray  # N×C×Z×Y×X float32
    masks: np.ndarray  # N×Z×Y×X uint8
    clinical: np.ndarray  # N×F float32 (encoded with the training encoder)
    labels: np.ndarray  # N int
    encoder: ClinicalEncoder
    manifest: Path
    extra: dict = field(default_factory=dict)

    def rows(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.frame["split"].to_numpy() == split)


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------


def load_case(row: pd.Series, root: Path, config: dict) -> "PreparedCase":
    """Read one manifest row's phases + mask and build the model crop."""
    phases = {name: read_image(root / row[name], name) for name in ("pre", "post1", "post2") if isinstance(row.get(name), str)}
    mask = read_image(root / row["mask"], "tumour mask")
    return prepare_case(phases, mask, config)


def load_cohort(manifest: Path, config: dict, splits: tuple[str, ...] = ("train", "val"),
                encoder: ClinicalEncoder | None = None, show_progress: bool = True) -> Cohort:
    """Load the manifest rows of ``splits``; fit the clinical encoder on train rows if none given."""
    manifest = Path(manifest)
    frame = pd.read_csv(manifest)
    frame = frame[frame["split"].isin(splits)].reset_index(drop=True)
    if frame.empty:
        raise ValueError(f"{manifest}: no rows with split in {splits}")
    records = records_from_frame(frame)
    if encoder is None:
        train_records = [r for r, s in zip(records, frame["split"]) if s == "train"]
        if not train_records:
            raise ValueError(f"{manifest}: no split == 'train' rows to fit the clinical encoder on")
        encoder = ClinicalEncoder().fit(train_records)
    cases = [load_case(row, manifest.parent, config)
             for _, row in tqdm(frame.iterrows(), total=len(frame), desc="loading crops", disable=not show_progress)]
    return Cohort(
        frame=frame,
        images=np.stack([c.image for c in cases]),
        masks=np.stack([c.mask for c in cases]),
        clinical=encoder.transform(records),
        labels=frame["pcr"].to_numpy().astype(int),
        encoder=encoder,
        manifest=manifest,
    )


def balanced_epoch(labels: np.ndarray, rows: np.ndarray, seed: int) -> np.ndarray:
    """A class-balanced draw (with replacement) of ``len(rows)`` training rows; same on every rank."""
    rng = np.random.default_rng(seed)
    y = labels[rows]
    weights = np.where(y == 1, 0.5 / max(y.sum(), 1), 0.5 / max((1 - y).sum(), 1))
    return rng.choice(rows, size=len(rows), replace=True, p=weights / weights.sum())


def rank_share(order: np.ndarray, info: DistInfo) -> np.ndarray:
    """Split an already-shuffled epoch across ranks (padded so every rank runs the same steps)."""
    per_rank = int(np.ceil(len(order) / info.world_size))
    return np.resize(order, per_rank * info.world_size)[info.rank :: info.world_size]


def augment(images: torch.Tensor, masks: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random left-right / antero-posterior flips and a ±10 % gain: cheap site-robustness."""
    for axis in (3, 4):
        if torch.rand(1, generator=generator).item() < 0.5:
            images, masks = images.flip(axis), masks.flip(axis - 1)
    gain = 1 + 0.1 * (2 * torch.rand(images.shape[0], 1, 1, 1, 1, generator=generator) - 1)
    return images * gain.to(images.device), masks


# ---------------------------------------------------------------------------------------------
# Optimisation
# ---------------------------------------------------------------------------------------------


def make_optimizer(model: PCRNet, spec: StepSpec, lr: float) -> torch.optim.Optimizer:
    """Adam; the encoder at ``lr × encoder_lr_factor`` (lower in the clinical step)."""
    encoder = list(model.encoder.parameters())
    encoder_ids = {id(p) for p in encoder}
    rest = [p for p in model.parameters() if id(p) not in encoder_ids]
    return torch.optim.AdamW(
        [{"params": encoder, "lr": lr * spec.encoder_lr_factor}, {"params": rest, "lr": lr}], weight_decay=1e-4
    )


def batch_loss(model: torch.nn.Module, batch: dict, spec: StepSpec) -> tuple[torch.Tensor, dict]:
    """L = BCE + λ_att·KL(m̂‖a) (λ_att = 0: no guidance)."""
    logit, attention = model(batch["image"], batch.get("clinical"), return_attention=True)
    cls = F.binary_cross_entropy_with_logits(logit.squeeze(1), batch["label"])
    if spec.lambda_att <= 0:
        return cls, {"cls": cls.item()}
    att = guidance_loss(attention, mask_target(batch["mask"], tuple(attention.shape[1:])))
    return cls + spec.lambda_att * att, {"cls": cls.item(), "att": att.item()}


def make_batch(cohort: Cohort, idx: np.ndarray, device: torch.device, spec: StepSpec,
               generator: torch.Generator | None) -> dict:
    images = torch.from_numpy(cohort.images[idx])
    masks = torch.from_numpy(cohort.masks[idx])
    if generator is not None:
        images, masks = augment(images, masks, generator)
    batch = {"image": images.to(device), "mask": masks.to(device),
             "label": torch.from_numpy(cohort.labels[idx].astype(np.float32)).to(device)}
    if spec.clinical:
        batch["clinical"] = torch.from_numpy(cohort.clinical[idx]).to(device)
    return batch


def train_epoch(model: torch.nn.Module, optimizer: torch.optim.Optimizer, cohort: Cohort, spec: StepSpec,
                info: DistInfo, epoch_seed: int, batch_size: int) -> dict[str, float]:
    """One epoch over this rank's share of a balanced draw; losses averaged over ranks."""
    model.train()
    order = balanced_epoch(cohort.labels, cohort.rows("train"), epoch_seed)
    mine = rank_share(order, info)
    generator = torch.Generator().manual_seed(epoch_seed * 1000 + info.rank)
    totals: dict[str, float] = {}
    n_batches = 0
    for start in range(0, len(mine), batch_size):
        batch = make_batch(cohort, mine[start : start + batch_size], info.device, spec, generator)
        loss, parts = batch_loss(model, batch, spec)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        for key, value in parts.items():
            totals[key] = totals.get(key, 0.0) + value
        n_batches += 1
    return {k: all_reduce_mean(v / max(n_batches, 1), info) for k, v in totals.items()}


@torch.no_grad()
def predict_logits(model: PCRNet, cohort: Cohort, rows: np.ndarray, device: torch.device,
                   batch_size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Raw logits and attention maps (feature grid) of ``rows``; eval mode, no augmentation."""
    model.eval()
    logits, attentions = [], []
    for start in range(0, len(rows), batch_size):
        idx = rows[start : start + batch_size]
        image = torch.from_numpy(cohort.images[idx]).to(device)
        clinical = torch.from_numpy(cohort.clinical[idx]).to(device) if model.config["clinical"] else None
        out = model.forward_all(image, clinical)
        logits.append(out.logit.cpu().numpy())
        attentions.append(out.attention.cpu().numpy())
    return np.concatenate(logits), np.concatenate(attentions)


def prior_offset(labels: np.ndarray) -> float:
    """Logit correction from the balanced-sampling prior (0.5) back to the training prevalence."""
    prevalence = float(np.clip(labels.mean(), 1e-3, 1 - 1e-3))
    return float(np.log(prevalence / (1 - prevalence)))


def probabilities(logits: np.ndarray, offset: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(logits + offset)))


def choose_threshold(cohort: Cohort, probs_val: np.ndarray) -> float:
    """Youden threshold on the validation rows (``probs_val`` must be those rows' probabilities)."""
    y = cohort.labels[cohort.rows("val")]
    if len(y) != len(probs_val):
        raise ValueError("threshold must be chosen on exactly the split == 'val' rows")
    if len(np.unique(y)) < 2:
        log.warning("validation rows hold a single class; threshold falls back to the training prevalence")
        return float(cohort.labels[cohort.rows("train")].mean())
    return youden_threshold(y, probs_val)


# ---------------------------------------------------------------------------------------------
# Steps, checkpoints, cards
# ---------------------------------------------------------------------------------------------


def plan_steps(args: argparse.Namespace) -> list[StepSpec]:
    """The step list of a run (``--steps`` can stop the stepwise run early, for ablations/tests)."""
    e1, e2, e3 = args.epochs
    if args.mode == "single-stage":
        return [StepSpec("single_stage", "single_stage", True, True, 0.0, e1 + e2 + e3)]
    steps = [
        StepSpec("global", "step1", False, False, 0.0, e1),
        StepSpec("attention", "step12", True, False, args.lambda_att, e2),
        StepSpec("clinical", "step123", True, True, args.lambda_att, e3, args.encoder_lr_factor),
    ]
    return steps[: args.steps]


def run_step(spec: StepSpec, previous: dict | None, cohort: Cohort, args: argparse.Namespace, info: DistInfo,
             base_config: dict) -> PCRNet:
    """Build the step's model, inherit the previous step's weights, train (resumably)."""
    seed_everything(args.seed)
    config = make_config(**base_config, attention=spec.attention, clinical=spec.clinical,
                         n_clinical=cohort.clinical.shape[1] if spec.clinical else 0)
    model = build_model(config)
    if previous is not None:
        fresh = inherit_weights(model, previous)
        log.info("step %s: initialised from the previous step; new modules: %s", spec.name,
                 sorted({k.split('.')[0] for k in fresh}) or "none")
    model.to(info.device)
    optimizer = make_optimizer(model, spec, args.lr)
    ckpt = Path(args.out) / "checkpoints" / f"{spec.tag}.pt"
    start = 0
    if args.resume and ckpt.exists():
        state = load_checkpoint(ckpt, model, optimizer)
        start = int(state["epoch"]) + 1
    wrapped = wrap_model(model, info)
    bar = tqdm(range(start, spec.epochs), desc=spec.name, disable=not info.is_main or args.quiet)
    for epoch in bar:
        losses = train_epoch(wrapped, optimizer, cohort, spec, info, args.seed * 10_000 + epoch, args.batch_size)
        bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items()})
        log.debug("%s epoch %d %s", spec.name, epoch, losses)
        if info.is_main:
            save_checkpoint(ckpt, wrapped, optimizer, {"step": spec.name, "epoch": epoch, "losses": losses})
    if info.distributed:
        torch.distributed.barrier()
    return unwrap(wrapped)


def manifest_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def build_card(model: PCRNet, spec: StepSpec, steps: list[StepSpec], cohort: Cohort, args: argparse.Namespace,
               offset: float, threshold: float, val_report: dict) -> dict:
    """Everything inference needs (and a reader should know) about this model."""
    config = model.config
    train_rows, val_rows = cohort.rows("train"), cohort.rows("val")
    return {
        "name": MODEL_NAME,
        "version": MODEL_VERSION,
        "task": "pcr",
        "ablation": spec.tag,
        "architecture": config,
        "inputs": {
            "phases": ["pre", "post1", "post2"],
            "required_phases": ["pre", "post1"],
            "reference_phase": "post1",
            "channels": list(DCE_CHANNELS),
            "mask": "binary tumour mask on the post1 grid",
            "crop_size_zyx": config["crop_size"],
            "spacing_xyz_mm": config["spacing"],
            "clinical_features": cohort.encoder.feature_names if config["clinical"] else [],
        },
        "classes": CLASSES,
        "threshold": threshold,
        "threshold_rule": THRESHOLD_RULE,
        "preprocessing": {
            "resampling": "all phases on the post1 grid, then linear resampling to spacing_xyz_mm (mask: nearest)",
            "intensity": "each channel divided by the 99.5th percentile of the resampled pre-contrast phase",
            "missing_post2": "replaced by post1 (plateau assumption)",
            "crop": "crop_size_zyx box centred on the tumour mask's bounding-box centre, zero-padded",
            "clinical_encoder": cohort.encoder.to_dict(),
            "logit_offset": offset,
            "logit_offset_reason": "balanced sampling trains under a 0.5 prior; offset log(π/(1−π)) restores training prevalence π",
        },
        "training_data": {
            "manifest": str(cohort.manifest),
            "manifest_sha256": manifest_digest(cohort.manifest),
            "n_train": int(len(train_rows)),
            "n_val": int(len(val_rows)),
            "sites": sorted(cohort.frame["site"].unique().tolist()),
            "prevalence_train": float(cohort.labels[train_rows].mean()),
        },
        "training": {
            "mode": args.mode,
            "steps": [s.__dict__ for s in steps[: steps.index(spec) + 1]],
            "lambda_att": args.lambda_att,
            "lr": args.lr,
            "batch_size": args.batch_size,
            "loss": "BCE (+ λ_att·KL(m̂‖a) in guided steps)",
            "sampling": "class-balanced draw with replacement each epoch",
            "seed": args.seed,
            "world_size": int(getattr(args, "world_size", 1)),
        },
        "metrics": {"val": val_report},
    }


def finish_step(model: PCRNet, spec: StepSpec, steps: list[StepSpec], cohort: Cohort, args: argparse.Namespace,
                info: DistInfo) -> Path:
    """Threshold and validation metrics on val rows, then save weights + card (rank 0 only)."""
    offset = prior_offset(cohort.labels[cohort.rows("train")])
    val = cohort.rows("val")
    logits, _ = predict_logits(model, cohort, val, info.device)
    probs = probabilities(logits, offset)
    threshold = choose_threshold(cohort, probs)
    report = binary_report(cohort.labels[val], probs, threshold) if len(val) else {}
    card = build_card(model, spec, steps, cohort, args, offset, threshold, report)
    final = spec is steps[-1]
    path = Path(args.out) / (f"{MODEL_NAME}.safetensors" if final else f"{MODEL_NAME}_{spec.tag}.safetensors")
    save_model(model.cpu(), card, path)
    model.to(info.device)
    auc = report.get("auc", {}).get("value", float("nan"))
    log.info("%s: val AUC %.3f, threshold %.3f -> %s", spec.name, auc, threshold, path)
    if final and spec.tag != "single_stage":
        # the final stepwise model is also kept under its ablation tag, so ablation lookups are uniform
        save_model(model.cpu(), card, Path(args.out) / f"{MODEL_NAME}_{spec.tag}.safetensors")
        model.to(info.device)
    return path


def dump_rank_parameters(model: PCRNet, out: Path, info: DistInfo) -> None:
    """Diagnostic: each rank writes its parameters, to verify that DDP kept the ranks in sync."""
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
              str(out / f"rank{info.rank}.safetensors"))


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training.train pcr", description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", required=True, type=Path, help="cohort manifest.csv (split: train/val/…)")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--mode", choices=["stepwise", "single-stage"], default="stepwise")
    parser.add_argument("--steps", type=int, choices=[1, 2, 3], default=3, help="stop the stepwise run after N steps")
    parser.add_argument("--epochs", type=int, nargs=3, default=[12, 12, 24], metavar=("E1", "E2", "E3"),
                        help="epochs of steps 1, 2, 3 (single stage: their sum)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--encoder-lr-factor", type=float, default=0.1, help="encoder LR factor in step 3")
    parser.add_argument("--lambda-att", type=float, default=1.0, help="weight of the guidance loss KL(m̂‖a)")
    parser.add_argument("--batch-size", type=int, default=8, help="per rank")
    parser.add_argument("--crop-size", type=int, nargs=3, default=None, metavar=("Z", "Y", "X"))
    parser.add_argument("--spacing", type=float, nargs=3, default=None, metavar=("X", "Y", "Z"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: 2 plain, 1 per DDP rank)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--rank-params-dir", type=Path, default=None,
                        help="diagnostic: every rank writes its final parameters here (DDP sync check)")
    return parser


def train(args: argparse.Namespace) -> Path | None:
    """Run the planned steps; returns the final weights path on rank 0 (None on other ranks)."""
    info = init_distributed()
    args.world_size = info.world_size
    torch.set_num_threads(args.threads or (1 if info.distributed else 2))
    base_config = {}
    if args.crop_size:
        base_config["crop_size"] = list(args.crop_size)
    if args.spacing:
        base_config["spacing"] = list(args.spacing)
    cohort = load_cohort(args.manifest, make_config(**base_config, clinical=False),
                         show_progress=info.is_main and not args.quiet)
    log.info("%d train / %d val rows, training prevalence %.2f", len(cohort.rows("train")),
             len(cohort.rows("val")), cohort.labels[cohort.rows("train")].mean())
    steps = plan_steps(args)
    previous, path = None, None
    try:
        for spec in steps:
            model = run_step(spec, previous, cohort, args, info, base_config)
            previous = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            if info.is_main:
                path = finish_step(model, spec, steps, cohort, args, info)
        if args.rank_params_dir is not None:
            dump_rank_parameters(model, args.rank_params_dir, info)
    finally:
        shutdown_distributed()
    return path


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    train(args)
    return 0
