"""pCR prediction for one patient: validated DCE phases + tumour mask + clinical record → PCRResult.

Every input is checked before the network runs, each problem with its own exception
(:mod:`responseai.errors`), so the Slicer module can tell the user which phase, field or file
to fix. The model is loaded once per weights file (:func:`responseai.weights.load_once`) after its card and sha256
are verified by :func:`responseai.weights.load_model`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from monai.visualize import GradCAM

from responseai.breast.constants import BREAST_SCHEMA
from responseai.breast.pcr.features import FEATURES, check_feature_definition, kinetic_features
from responseai.breast.pcr.model import TASK, PCRNet, build_model
from responseai.breast.pcr.preprocess import PreparedCase, prepare_case
from responseai.clinical import ClinicalEncoder, validate_clinical
from responseai.explain import crop_map_to_input, mass_in_mask, normalise_unit, pointing_game, upsample_to_crop
from responseai.image import Image
from responseai.resources import model_path
from responseai.weights import load_model, load_once

log = logging.getLogger(__name__)

DEFAULT = model_path("breast_pcr")
GRADCAM_LAYER = "encoder"  # output of the whole encoder: the feature map the attention sees


@dataclass
class PCRResult:
    """Per-case pCR output; maps are on the input post1 grid with values in [0, 1]."""

    probability: float
    predicted_class: str
    threshold: float
    attention: Image
    gradcam: Image
    attention_in_mask: float
    pointing_game_hit: bool
    model_name: str
    model_version: str
    missing_clinical: list[str]
    image_features: dict[str, float] | None = None  # the kinetic features the model read (radiomics models)


class ImageOnlyModel(torch.nn.Module):
    """Binds the clinical vector and the kinetic features so MONAI's Grad-CAM can call the model with
    the image alone (the features are constants for the gradient: Grad-CAM explains the CNN).

    The wrapper takes the wrapped model's mode: MONAI's Grad-CAM puts the network in eval mode for its
    pass and then restores the *wrapper's* mode. A new module is in training mode, so a wrapper left in
    it switched the loaded network's dropout on after the first Grad-CAM, and every later prediction
    in the process (a cohort run, a second case in the same session) came out randomly perturbed.
    """

    def __init__(self, model: PCRNet) -> None:
        super().__init__()
        self.model = model
        self.clinical: torch.Tensor | None = None
        self.radiomics: torch.Tensor | None = None
        self.train(model.training)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model(image, self.clinical, self.radiomics)


@dataclass
class LoadedPCR:
    """A verified network with its card, the training-time clinical encoder and a Grad-CAM.

    The Grad-CAM is built once per model because MONAI registers hooks on the target layer
    at construction; building one per call would pile up hooks on the cached network.
    """

    model: PCRNet
    card: dict
    encoder: ClinicalEncoder | None
    wrapper: ImageOnlyModel
    cam: GradCAM


def _load(path: Path) -> LoadedPCR:
    model, card = load_model(path, build_model, expected_task=TASK)
    check_feature_definition(card)
    encoder = None
    if card["architecture"]["clinical"]:
        encoder = ClinicalEncoder.from_dict(card["preprocessing"]["clinical_encoder"], BREAST_SCHEMA)
    wrapper = ImageOnlyModel(model)
    cam = GradCAM(wrapper, target_layers=f"model.{GRADCAM_LAYER}")
    return LoadedPCR(model, card, encoder, wrapper, cam)


def load_pcr_model(weights_path: str | Path = DEFAULT) -> LoadedPCR:
    """Load (once per file version) and verify a pCR model; raises WeightsError when it can't."""
    return load_once(weights_path, _load)


def encode_clinical(clinical: Mapping[str, object], loaded: LoadedPCR) -> tuple[np.ndarray | None, list[str]]:
    """Validate the record (ClinicalValueError on bad values); list the unknown variables."""
    values = validate_clinical(dict(clinical), BREAST_SCHEMA)
    missing = [name for name, value in values.items() if value is None]
    if loaded.encoder is None:
        return None, missing
    return loaded.encoder.transform_one(clinical)[None], missing


def gradcam_crop(loaded: LoadedPCR, image: torch.Tensor, clinical: torch.Tensor | None,
                 radiomics: torch.Tensor | None) -> np.ndarray:
    """Grad-CAM of the pCR logit on the encoder output, upsampled to the crop, in [0, 1]."""
    loaded.wrapper.clinical, loaded.wrapper.radiomics = clinical, radiomics
    with torch.enable_grad():
        # an input that requires grad makes the full backward hook fire on the encoder itself
        result = loaded.cam(image.clone().requires_grad_(True), class_idx=0)
    return np.nan_to_num(np.asarray(result[0, 0].detach().cpu().numpy(), np.float32))


def run_network(loaded: LoadedPCR, case: PreparedCase, clinical_vec: np.ndarray | None) -> dict:
    """Probability, attention and Grad-CAM on the crop grid for one prepared case."""
    model, card = loaded.model, loaded.card
    image = torch.from_numpy(case.image[None])
    clinical = torch.from_numpy(clinical_vec) if clinical_vec is not None else None
    radiomics = torch.from_numpy(kinetic_features(case.image, case.mask)[None]) if card["architecture"].get("radiomics") else None
    with torch.no_grad():
        out = model.forward_all(image, clinical, radiomics)
    logit = float(out.logit[0]) + float(card["preprocessing"].get("logit_offset", 0.0))
    attention = upsample_to_crop(out.attention[0].numpy(), case.image.shape[1:])
    return {
        "probability": float(1 / (1 + np.exp(-logit))),
        "attention_crop": attention,
        "gradcam_crop": gradcam_crop(loaded, image, clinical, radiomics),
        "image_features": None if radiomics is None else dict(zip(FEATURES, (float(v) for v in radiomics[0]))),
    }


def predict_pcr(
    phases: Mapping[str, Image | None],
    mask: Image,
    clinical: Mapping[str, object],
    weights_path: str | Path = DEFAULT,
) -> PCRResult:
    """Predict pCR for one patient.

    ``phases``: ``pre``, ``post1`` (required) and ``post2`` (optional) on one grid; ``mask``: the
    tumour mask on the post1 grid; ``clinical``: any subset of the breast schema (absent or
    None = unknown). Raises MissingPhaseError, GeometryMismatchError, InvalidImageError,
    EmptyMaskError, ClinicalValueError or WeightsError, before any computation it would waste.
    """
    loaded = load_pcr_model(weights_path)
    clinical_vec, missing = encode_clinical(clinical, loaded)
    case = prepare_case(phases, mask, loaded.card["architecture"])
    maps = run_network(loaded, case, clinical_vec)
    threshold = float(loaded.card["threshold"])
    classes = loaded.card["classes"]
    return PCRResult(
        probability=maps["probability"],
        predicted_class=classes[int(maps["probability"] >= threshold)],
        threshold=threshold,
        attention=crop_map_to_input(normalise_unit(maps["attention_crop"]), case.grid, case.reference),
        gradcam=crop_map_to_input(maps["gradcam_crop"], case.grid, case.reference),
        attention_in_mask=mass_in_mask(maps["attention_crop"], case.mask),
        pointing_game_hit=pointing_game(maps["attention_crop"], case.mask),
        model_name=loaded.card["name"],
        model_version=loaded.card["version"],
        missing_clinical=missing,
        image_features=maps["image_features"],
    )
