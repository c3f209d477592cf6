"""Tumour segmentation network: a compact MONAI 3D UNet over the DCE channels.

Sized for CPU inference (152 k parameters, 0.6 MB; a 48×96×96 volume in well under a second on
two cores): the enhancing tumour is a high-contrast object in the subtraction channel, so
depth matters more than width here.
"""

from __future__ import annotations

from collections.abc import Mapping

from monai.networks.nets import UNet

from responseai.breast.constants import DCE_CHANNELS
from responseai.errors import WeightsError

DEFAULT_ARCHITECTURE = {
    "family": "monai.UNet",
    "in_channels": len(DCE_CHANNELS),
    "out_channels": 2,
    "channels": [8, 16, 32, 64],
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
