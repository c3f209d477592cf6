"""Tumour segmentation of one case: DCE phases → binary mask on the input post1 grid.

Channels are built at the network's spacing (the card's), the volume is segmented with MONAI's
sliding-window inference, the largest connected component is kept and holes are filled (MONAI
transforms), and the mask is resampled back onto the exact input grid.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from monai.inferers import sliding_window_inference
from monai.transforms import FillHoles, KeepLargestConnectedComponent

from responseai.breast.constants import REFERENCE_PHASE
from responseai.breast.preprocess import check_phases, dce_channels
from responseai.breast.segmentation.model import TASK, build_model
from responseai.errors import EmptyMaskError
from responseai.image import Image
from responseai.io import resample_to
from responseai.resources import model_path
from responseai.spatial import resample_to_spacing
from responseai.weights import load_model, load_once

log = logging.getLogger(__name__)

DEFAULT = model_path("breast_seg")


def _load(path: Path) -> tuple[torch.nn.Module, dict]:
    return load_model(path, build_model, expected_task=TASK)


def load_segmentation_model(weights_path: str | Path = DEFAULT) -> tuple[torch.nn.Module, dict]:
    """Verified network + card, loaded once per file version (Slicer re-runs reuse it).

    Raises WeightsError for a missing, truncated or mismatching file.
    """
    return load_once(weights_path, _load)


def network_input(phases: Mapping[str, Image], spacing: tuple[float, float, float]) -> tuple[np.ndarray, Image]:
    """DCE channels at the network spacing, and the resampled post1 grid they live on."""
    resampled = {name: resample_to_spacing(image, spacing) for name, image in phases.items()}
    return dce_channels(resampled), resampled[REFERENCE_PHASE]


def predict_probability(
    model: torch.nn.Module,
    channels: np.ndarray,
    patch: tuple[int, int, int],
    device: torch.device | str | None = None,
) -> np.ndarray:
    """Tumour probability per voxel (sliding window, Gaussian blending at patch seams).

    Sliding windows of the training patch size keep the receptive-field context the network
    was trained with and bound memory, whatever the size of the input volume.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(channels[None])).float().to(device)
        logits = sliding_window_inference(x, patch, sw_batch_size=2, predictor=model, overlap=0.25, mode="gaussian")
        return torch.softmax(logits, 1)[0, 1].cpu().numpy()


def postprocess(probability: np.ndarray, threshold: float) -> np.ndarray:
    """Threshold, keep the largest component, fill holes (a tumour is one solid object here)."""
    mask = torch.from_numpy(probability[None] >= threshold)
    mask = KeepLargestConnectedComponent(applied_labels=[1])(mask.to(torch.uint8))
    mask = FillHoles(applied_labels=[1])(mask)
    return np.asarray(mask[0], dtype=np.uint8)


def segment_tumour(
    phases: Mapping[str, Image | None],
    weights_path: str | Path = DEFAULT,
    device: torch.device | str | None = None,
) -> Image:
    """Binary tumour mask (uint8) on the post1 grid of ``phases``.

    ``phases`` needs ``pre`` and ``post1`` (``post2`` optional, see the card), finite 3D volumes
    on the post1 grid: a missing phase raises :class:`MissingPhaseError`, NaN/Inf voxels
    :class:`InvalidImageError`, a different grid :class:`GeometryMismatchError` (checked before
    the model is loaded, so a bad input fails fast). ``device`` defaults to the CPU; the cached
    model is moved there. An empty prediction raises :class:`EmptyMaskError` rather than
    returning an empty mask that would silently break the pCR step downstream.
    """
    aligned = check_phases(phases)
    model, card = load_segmentation_model(weights_path)
    model.to(torch.device(device) if device is not None else torch.device("cpu"))
    spacing = tuple(float(s) for s in card["inputs"]["spacing_mm"])
    channels, grid = network_input(aligned, spacing)
    probability = predict_probability(model, channels, tuple(card["inputs"]["patch_size"]))
    mask = postprocess(probability, float(card["threshold"]))
    if not mask.any():
        raise EmptyMaskError(
            "the segmentation model found no tumour (no voxel above the card's threshold "
            f"{float(card['threshold']):g}); check the phases are pre/post-contrast of the same study, "
            "or draw the tumour segment manually"
        )
    on_input = resample_to(grid.with_array(mask), aligned[REFERENCE_PHASE], is_label=True)
    if not on_input.array.any():
        raise EmptyMaskError("the segmented tumour is smaller than one voxel of the input grid")
    log.debug("segmented %d voxels", int(on_input.array.sum()))
    return on_input.with_array(on_input.array.astype(np.uint8))
