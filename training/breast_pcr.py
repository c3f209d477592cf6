"""Train the breast pCR model: the three steps of seed 000, or the single-stage baseline.

Stepwise (``--mode stepwise``), each step initialised from the last:

1. ``global``    image only, global average pooling, no attention;
2. ``attention`` + spatial attention, loss ``L_cls + λ_att·KL(m̂‖a)`` (m̂: dilated tumour mask
   on the feature grid);
3. ``clinical``  + clinical MLP fused with the attended feature; the image encoder is
   fine-tuned at ``--encoder-lr-factor`` × the learning rate, or, at factor 0 (1.4), the whole
   image branch — encoder, its batch-norm statistics and the attention — is kept as step 2 left it.

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

import dataclasses
import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from tqdm import tqdm

from responseai.breast.constants import DCE_CHANNELS, MANIFEST_SCHEMA, REQUIRED_PHASES
from responseai.breast.pcr.cohort import Cohort, load_cohort, predict_logits, prior_offset, probabilities
from responseai.breast.pcr.features import FEATURES
from responseai.breast.pcr.model import TASK, PCRNet, build_model, guidance_loss, inherit_weights, make_config, mask_target
from responseai.manifest import prepare_manifest
from responseai.metrics import auc_or_nan, binary_report, youden_threshold
from responseai.weights import save_model
from training.engine import (
    DistInfo,
    all_reduce_mean,
    broadcast_buffers,
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

MODEL_NAME = "breast_pcr"
MODEL_VERSION = "1.5.0"  # 1.1: batch-normalised encoder, optional kinetic-feature term; 1.2: step 3 kept at its
# best val epoch; 1.3: the same model trained on five phantom seeds (training/build_pcr_weights.sh); 1.4: step 3
# keeps step 2's image branch frozen (--encoder-lr-factor 0); 1.5: the kinetic-feature term without initial
# enhancement (docs/pcr-evaluation/no-initial-enhancement/RULE.md)
CLASSES = ["no pCR", "pCR"]
THRESHOLD_RULE = "max Youden J (sensitivity + specificity − 1) on split == 'val' rows only"
MANIFEST_NEEDS = {"require": (*REQUIRED_PHASES, "split", "site", "mask", "pcr"), "need_splits": ("train", "val")}


@dataclass(frozen=True)
class PcrTrainConfig:
    """Everything a pCR training run is given; also its command line (:func:`training.engine.parse_config`)."""

    manifest: Path = field(metadata={"help": "cohort manifest.csv (split: train/val/…)"})
    out: Path = field(metadata={"help": "output folder"})
    columns: str | None = field(default=None, metadata={
        "help": "map manifest names to the CSV's: pcr=PCR_LABEL,age=AGE or a JSON file"})
    mode: str = field(default="stepwise", metadata={"choices": ["stepwise", "single-stage"]})
    steps: int = field(default=3, metadata={"choices": [1, 2, 3], "help": "stop the stepwise run after N steps"})
    epochs: tuple[int, ...] = field(default=(12, 12, 24), metadata={
        "nargs": 3, "metavar": ("E1", "E2", "E3"), "help": "epochs of steps 1, 2, 3 (single stage: their sum)"})
    lr: float = 1e-3
    encoder_lr_factor: float = field(default=0.0, metadata={
        "help": "encoder LR factor in step 3; 0 freezes the image branch (encoder, batch-norm statistics, attention)"})
    lambda_att: float = field(default=1.0, metadata={"help": "weight of the guidance loss KL(m̂‖a)"})
    norm: str = field(default="batch", metadata={"choices": ["batch", "instance"],
                                                 "help": "encoder normalisation (instance: the cards before 1.1)"})
    clinical_linear: bool = field(default=True, metadata={
        "help": "step 3: a linear clinical term beside the fusion MLP, fitted on the train rows before training"})
    radiomics: bool = field(default=False, metadata={
        "help": "feed the tumour's kinetic features beside the CNN from step 1 (radiomics-guided image branch)"})
    batch_size: int = field(default=8, metadata={"help": "per rank"})
    crop_size: tuple[int, ...] | None = field(default=None, metadata={"nargs": 3, "metavar": ("Z", "Y", "X")})
    spacing: tuple[float, ...] | None = field(default=None, metadata={"nargs": 3, "metavar": ("X", "Y", "Z")})
    seed: int = 0
    threads: int = field(default=0, metadata={"help": "torch CPU threads (0: 2 plain, 1 per DDP rank)"})
    resume: bool = field(default=False, metadata={"help": "continue from OUT/checkpoints"})
    quiet: bool = field(default=False, metadata={"help": "no progress bars"})
    rank_params_dir: Path | None = field(default=None, metadata={
        "help": "diagnostic: every rank writes its final parameters here (DDP sync check)"})


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
    select_by_val: bool = False  # keep the epoch with the best val AUC (steps that fit the clinical record)

    @property
    def frozen_image(self) -> bool:
        """Factor 0: the image branch stays exactly as the previous step left it (see :func:`image_branch`)."""
        return self.encoder_lr_factor == 0


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


def image_branch(model: PCRNet) -> list[torch.nn.Module]:
    """The encoder and its attention: what the clinical step keeps fixed at ``--encoder-lr-factor 0``.

    Why frozen (1.4): fine-tuning the encoder in step 3, even at 0.1 × the learning rate, moved the
    guided attention off the tumour on another generator's exams (alt phantom seed 23: median
    attention in the tumour 0.56 after step 2, 0.38 after step 3), while step 2's encoder and
    attention under step 3's fusion lost no AUC there or on the main phantom's development site E.
    """
    return [m for m in (model.encoder, model.attention) if m is not None]


def make_optimizer(model: PCRNet, spec: StepSpec, lr: float) -> torch.optim.Optimizer:
    """AdamW; the encoder at ``lr × encoder_lr_factor`` (lower in the clinical step; 0: image branch frozen)."""
    if spec.frozen_image:
        for module in image_branch(model):
            module.requires_grad_(False)
        return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=1e-4)
    encoder = list(model.encoder.parameters())
    encoder_ids = {id(p) for p in encoder}
    rest = [p for p in model.parameters() if id(p) not in encoder_ids]
    return torch.optim.AdamW(
        [{"params": encoder, "lr": lr * spec.encoder_lr_factor}, {"params": rest, "lr": lr}], weight_decay=1e-4
    )


def batch_loss(model: torch.nn.Module, batch: dict, spec: StepSpec) -> tuple[torch.Tensor, dict]:
    """L = BCE + λ_att·KL(m̂‖a) (λ_att = 0: no guidance)."""
    logit, attention = model(batch["image"], batch.get("clinical"), batch.get("radiomics"), return_attention=True)
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
    batch["radiomics"] = torch.from_numpy(cohort.radiomics[idx]).to(device)  # read only by a radiomics model
    return batch


def train_epoch(model: torch.nn.Module, optimizer: torch.optim.Optimizer, cohort: Cohort, spec: StepSpec,
                info: DistInfo, epoch_seed: int, batch_size: int) -> dict[str, float]:
    """One epoch over this rank's share of a balanced draw; losses averaged over ranks."""
    model.train()
    if spec.frozen_image:
        for module in image_branch(unwrap(model)):
            module.eval()  # batch-norm statistics stay step 2's too
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


def plan_steps(config: PcrTrainConfig) -> list[StepSpec]:
    """The step list of a run (``--steps`` can stop the stepwise run early, for ablations/tests)."""
    e1, e2, e3 = config.epochs
    if config.mode == "single-stage":
        return [StepSpec("single_stage", "single_stage", True, True, 0.0, e1 + e2 + e3, select_by_val=True)]
    steps = [
        StepSpec("global", "step1", False, False, 0.0, e1),
        StepSpec("attention", "step12", True, False, config.lambda_att, e2),
        StepSpec("clinical", "step123", True, True, config.lambda_att, e3, config.encoder_lr_factor, select_by_val=True),
    ]
    return steps[: config.steps]


@dataclass
class ValidationSelection:
    """The state with the highest val AUC seen so far in a step (the earliest on ties), kept on disk for resume.

    Why: with the clinical record in the model, the training rows are memorised within a few
    dozen epochs. In 1.1.0's step 3 (``training/pcr_dev_curve.py``) train AUC rose from 0.90 to
    0.97 between epochs 12 and 23 while AUC on unseen development exams fell from 0.87 to 0.77
    (and 0.90 to 0.84); the val rows, never trained on, are the only stopping signal training has.
    """

    path: Path
    epoch: int = -2  # -1: the state before the step's first epoch (after the clinical-term fit)
    auc: float = float("-inf")
    history: list = field(default_factory=list)
    state: dict | None = None  # in memory on every rank; the file is for --resume

    def offer(self, model: PCRNet, cohort: Cohort, epoch: int, device: torch.device, save: bool) -> None:
        val = cohort.rows("val")
        logits, _ = predict_logits(model, cohort, val, device)
        auc = auc_or_nan(cohort.labels[val], logits.ravel())
        self.history.append([epoch, round(float(auc), 4)])
        if auc > self.auc:
            self.epoch, self.auc = epoch, float(auc)
            self.state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        if save:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"model": self.state, "epoch": self.epoch, "auc": self.auc, "history": self.history},
                       self.path)

    def restore(self, model: PCRNet) -> None:
        """Load the kept state into ``model``."""
        model.load_state_dict(self.state)

    def resume(self) -> None:
        """Pick up the selection of an interrupted run (``--resume``)."""
        if self.path.exists():
            payload = torch.load(self.path, map_location="cpu", weights_only=True)
            self.epoch, self.auc, self.history = int(payload["epoch"]), float(payload["auc"]), list(payload["history"])
            self.state = payload["model"]

    def record(self) -> dict:
        return {"rule": "epoch with the highest val AUC (earliest on ties); -1 = before the first epoch",
                "selected_epoch": self.epoch, "val_auc": round(self.auc, 4), "val_auc_by_epoch": self.history}


def step_model(spec: StepSpec, previous: dict | None, cohort: Cohort, seed: int, base_config: dict) -> PCRNet:
    """The step's network, seeded, started from the previous step's weights (or its feature statistics)."""
    seed_everything(seed)
    arch = make_config(**base_config, attention=spec.attention, clinical=spec.clinical,
                       n_clinical=cohort.clinical.shape[1] if spec.clinical else 0)
    model = build_model(arch)
    if arch["radiomics"] and previous is None:
        train_rows = cohort.rows("train")
        model.set_radiomics_statistics(cohort.radiomics[train_rows], cohort.labels[train_rows])
    if previous is not None:
        fresh = inherit_weights(model, previous)
        log.info("step %s: initialised from the previous step; new modules: %s", spec.name,
                 sorted({k.split('.')[0] for k in fresh}) or "none")
    return model


def run_step(spec: StepSpec, previous: dict | None, cohort: Cohort, config: PcrTrainConfig, info: DistInfo,
             base_config: dict) -> tuple[PCRNet, dict]:
    """Build the step's model, inherit the previous step's weights, train (resumably).

    Returns the model and, for a step selected on val, the selection record for its card.
    """
    model = step_model(spec, previous, cohort, config.seed, base_config)
    arch = model.config
    model.to(info.device)
    optimizer = make_optimizer(model, spec, config.lr)
    ckpt = Path(config.out) / "checkpoints" / f"{spec.tag}.pt"
    start = 0
    if config.resume and ckpt.exists():
        state = load_checkpoint(ckpt, model, optimizer)
        start = int(state["epoch"]) + 1
    if spec.clinical and arch["clinical_linear"] and previous is not None and start == 0 < spec.epochs:
        fit_clinical_term(model, cohort, info.device)
    selection = ValidationSelection(ckpt.with_name(f"{spec.tag}_best.pt")) if spec.select_by_val else None
    if selection is not None:
        selection.resume()
        if start == 0:
            selection.offer(model, cohort, -1, info.device, info.is_main)
    wrapped = wrap_model(model, info)
    bar = tqdm(range(start, spec.epochs), desc=spec.name, disable=not info.is_main or config.quiet)
    for epoch in bar:
        losses = train_epoch(wrapped, optimizer, cohort, spec, info, config.seed * 10_000 + epoch, config.batch_size)
        bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items()})
        log.debug("%s epoch %d %s", spec.name, epoch, losses)
        if selection is not None:
            broadcast_buffers(wrapped, info)  # every rank judges the same model
            selection.offer(unwrap(wrapped), cohort, epoch, info.device, info.is_main)
        if info.is_main:
            save_checkpoint(ckpt, wrapped, optimizer, {"step": spec.name, "epoch": epoch, "losses": losses})
    if info.distributed:
        broadcast_buffers(wrapped, info)
        torch.distributed.barrier()
    model = unwrap(wrapped)
    if selection is None or selection.epoch == -2:
        return model, {}
    selection.restore(model)
    log.info("%s: kept epoch %d (val AUC %.3f)", spec.name, selection.epoch, selection.auc)
    return model, selection.record()


def fit_clinical_term(model: PCRNet, cohort: Cohort, device: torch.device) -> None:
    """Fit the linear clinical term on the train rows, the image model's logit as an offset.

    Why: the fusion MLP starts at zero and, on ≈ 150 training rows, a few hundred Adam steps leave
    it short of what a logistic regression on the clinical record reaches (the 1.0 model fused to
    AUC 0.86, exactly the clinical-only reference). Starting step 3 from "image logit + the best
    linear clinical correction" (class-balanced BCE, L2 as scikit-learn's C = 1; L-BFGS) lets the
    MLP and the encoder learn only what that misses. Every rank computes the same fit.
    """
    rows = cohort.rows("train")
    offset = torch.from_numpy(predict_logits(model, cohort, rows, device)[0]).to(device)
    x = torch.from_numpy(cohort.clinical[rows]).to(device)
    y = torch.from_numpy(cohort.labels[rows].astype(np.float32)).to(device)
    layer = model.clinical_linear
    fit_linear_term(layer, lambda: offset + layer(x).squeeze(1), y, len(rows))
    log.info("clinical term fitted on %d train rows (|w| = %.2f)", len(rows), float(layer.weight.detach().norm()))


def fit_linear_term(layer: torch.nn.Linear, logit, y: torch.Tensor, n_patients: int) -> None:
    """Fit ``layer`` by L-BFGS to the class-balanced BCE of ``logit()`` (a closure reading it) against ``y``,
    with L2 on its weight as scikit-learn's C = 1 over ``n_patients`` (one row per patient, or several draws)."""
    weight = torch.where(y > 0, 0.5 / y.sum().clamp_min(1), 0.5 / (1 - y).sum().clamp_min(1))
    optimizer = torch.optim.LBFGS(layer.parameters(), max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = (weight * F.binary_cross_entropy_with_logits(logit(), y, reduction="none")).sum()
        loss = loss + 0.5 * layer.weight.pow(2).sum() / n_patients
        loss.backward()
        return loss

    optimizer.step(closure)


def manifest_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def build_card(model: PCRNet, spec: StepSpec, steps: list[StepSpec], cohort: Cohort, run: PcrTrainConfig,
               world_size: int, offset: float, threshold: float, val_report: dict, selection: dict) -> dict:
    """Everything inference needs (and a reader should know) about this model."""
    arch = model.config
    train_rows, val_rows = cohort.rows("train"), cohort.rows("val")
    return {
        "name": MODEL_NAME,
        "version": MODEL_VERSION,
        "task": TASK,
        "ablation": spec.tag,
        "architecture": arch,
        "inputs": {
            "phases": ["pre", "post1", "post2"],
            "required_phases": ["pre", "post1"],
            "reference_phase": "post1",
            "channels": list(DCE_CHANNELS),
            "mask": "binary tumour mask on the post1 grid",
            "crop_size_zyx": arch["crop_size"],
            "spacing_xyz_mm": arch["spacing"],
            "clinical_features": cohort.encoder.feature_names if arch["clinical"] else [],
            "radiomics_features": list(FEATURES) if arch["radiomics"] else [],
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
            "mode": run.mode,
            "steps": [s.__dict__ for s in steps[: steps.index(spec) + 1]],
            "lambda_att": run.lambda_att,
            "lr": run.lr,
            "batch_size": run.batch_size,
            "loss": "BCE (+ λ_att·KL(m̂‖a) in guided steps)",
            "sampling": "class-balanced draw with replacement each epoch",
            "seed": run.seed,
            "world_size": world_size,
            **({"selection": selection} if selection else {}),
        },
        "metrics": {"val": val_report},
    }


def finish_step(model: PCRNet, spec: StepSpec, steps: list[StepSpec], cohort: Cohort, config: PcrTrainConfig,
                info: DistInfo, selection: dict) -> Path:
    """Threshold and validation metrics on val rows, then save weights + card (rank 0 only)."""
    offset = prior_offset(cohort.labels[cohort.rows("train")])
    val = cohort.rows("val")
    logits, _ = predict_logits(model, cohort, val, info.device)
    probs = probabilities(logits, offset)
    threshold = choose_threshold(cohort, probs)
    report = binary_report(cohort.labels[val], probs, threshold) if len(val) else {}
    card = build_card(model, spec, steps, cohort, config, info.world_size, offset, threshold, report, selection)
    final = spec is steps[-1]
    path = Path(config.out) / (f"{MODEL_NAME}.safetensors" if final else f"{MODEL_NAME}_{spec.tag}.safetensors")
    save_model(model.cpu(), card, path)
    model.to(info.device)
    auc = report.get("auc", {}).get("value", float("nan"))
    log.info("%s: val AUC %.3f, threshold %.3f -> %s", spec.name, auc, threshold, path)
    if final and spec.tag != "single_stage":
        # the final stepwise model is also kept under its ablation tag, so ablation lookups are uniform
        save_model(model.cpu(), card, Path(config.out) / f"{MODEL_NAME}_{spec.tag}.safetensors")
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


def train(config: PcrTrainConfig) -> Path | None:
    """Run the planned steps; returns the final weights path on rank 0 (None on other ranks)."""
    info = init_distributed()
    torch.set_num_threads(config.threads or (1 if info.distributed else 2))
    base_config = {}
    if config.crop_size:
        base_config["crop_size"] = list(config.crop_size)
    if config.spacing:
        base_config["spacing"] = list(config.spacing)
    if config.radiomics:
        base_config["radiomics"] = len(FEATURES)
    base_config["norm"] = config.norm
    base_config["clinical_linear"] = config.clinical_linear
    cohort = load_cohort(config.manifest, make_config(**base_config, clinical=False),
                         show_progress=info.is_main and not config.quiet)
    log.info("%d train / %d val rows, training prevalence %.2f", len(cohort.rows("train")),
             len(cohort.rows("val")), cohort.labels[cohort.rows("train")].mean())
    steps = plan_steps(config)
    previous, path = None, None
    try:
        for spec in steps:
            model, selection = run_step(spec, previous, cohort, config, info, base_config)
            previous = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            if info.is_main:
                path = finish_step(model, spec, steps, cohort, config, info, selection)
        if config.rank_params_dir is not None:
            dump_rank_parameters(model, config.rank_params_dir, info)
    finally:
        shutdown_distributed()
    return path


def main(argv: list[str] | None = None) -> int:
    """Validate the manifest (every problem listed, exit 2 through the CLI), then train."""
    config = parse_config(PcrTrainConfig, argv, "python -m training.train breast pcr", __doc__.splitlines()[0])
    manifest = prepare_manifest(config.manifest, MANIFEST_SCHEMA, config.columns, config.out, **MANIFEST_NEEDS)
    train(dataclasses.replace(config, manifest=manifest))
    return 0
