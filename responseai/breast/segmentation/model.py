"""Breast and tumour segmentation network: a compact MONAI 3D UNet over the DCE channels.

Sized for CPU inference (≈ 0.6 M parameters; a bilateral exam on the 1.5 × 1.5 × 2 mm canonical
grid in a few seconds on two cores). Three classes, background / breast / tumour: the breast
class is what lets inference discard the heart, vessels and nodes, which enhance as much as a
tumour. The architecture is read from each card, so older two-class cards still load.
"""

from __future__ import annotations

from collections.abc import Mapping

from monai.networks.nets import UNet

from responseai.breast.constants import DCE_CHANNELS
from responseai.errors import WeightsError

DEFAULT_ARCHITECTURE = {
    "family": "monai.UNet",
    "in_channels": len(DCE_CHANNELS),
    "out_channels": 3,  # background, breast, tumour (a 2-class card still loads: its architecture says so)
    "channels": [16, 32, 64, 128],
    "strides": [2, 2, 2],
    "num_res_units": 1,
}
TASK = "segmentation"  # the model card's task
SPACING_MM = (1.5, 1.5, 2.0)  # x, y, z: what the network sees, whatever the scanner gave


def build_model(card: Mapping) -> UNet:
    """The network described by a model card's ``architecture`` (or the default)."""
    arch = dict(card.get("architecture", DEFAULT_ARCHITECTURE))
    if arch.get("family") != "monai.UNet":
        raise WeightsError(f"segmentation card describes a '{arch.get('family')}', expected monai.UNet")
    return UNet(
        spatial_dims=3,
        in_channels=int(arch["in_channels"]),
        out_channels=int(arch["out_channels"]),
        channels=tuple(arch["channels"]),
        strides=tuple(arch["strides"]),
        num_res_units=int(arch["num_res_units"]),
    )
