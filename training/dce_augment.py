"""Contrast-uptake augmentation for DCE patches: how strongly the tumour, the breast and the whole
exam enhance, drawn independently (a MONAI dictionary transform).

Why: the phantom draws its tumour's early enhancement from one narrow band, so a network trained
on it learns an *amplitude* ("a tumour is about this bright over its pre-contrast signal") rather
than a *pattern* (an enhancing mass inside the breast). Real malignant lesions enhance 80 to more
than 300 % in the first post-contrast minutes, background parenchymal enhancement runs from
minimal to marked, and dose, injection rate and timing change every exam's uptake. An exam whose
tumour enhances as strongly as the heart (the independent variant phantom does) then falls
outside what the network has seen and it was missed or only its rim found. Drawing the gains
widely removes the shortcut; the pre-contrast channel is left untouched, so the anatomy does not
move, and the subtraction channel is recomputed from the scaled phases.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.transforms import MapTransform, RandomizableTransform
from scipy import ndimage

#: channel layout of the segmentation input (responseai.breast.preprocess.dce_channels)
PRE, POSTS, SUBTRACTION = 0, (1, 2), 3


class RandEnhancementd(RandomizableTransform, MapTransform):
    """Scale post-contrast uptake (post − pre) by a tumour gain, a breast gain and an exam gain.

    ``label`` holds 0 background, 1 breast, 2 tumour (the segmentation labels). The gains are
    blended with Gaussian-smoothed label weights (``sigma`` voxels), so no artificial edge appears
    at a label boundary that the network could use as a cue.
    """

    def __init__(self, keys: Sequence[Hashable] = ("image",), label_key: str = "label", prob: float = 0.7,
                 tumour: tuple[float, float] = (0.6, 2.8), breast: tuple[float, float] = (0.5, 2.0),
                 exam: tuple[float, float] = (0.7, 1.4), sigma: float = 1.0) -> None:
        MapTransform.__init__(self, keys)
        RandomizableTransform.__init__(self, prob)
        self.label_key, self.ranges, self.sigma = label_key, (tumour, breast, exam), sigma
        self.gains = (1.0, 1.0, 1.0)

    def randomize(self, data: object = None) -> None:
        super().randomize(None)
        self.gains = tuple(float(self.R.uniform(low, high)) for low, high in self.ranges)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        self.randomize()
        if not self._do_transform:
            return d
        label = np.asarray(d[self.label_key])[0]
        tumour_gain, breast_gain, exam_gain = self.gains
        weight = exam_gain * (1.0 + (tumour_gain - 1.0) * self._smooth(label == 2)
                              + (breast_gain - 1.0) * self._smooth(label == 1))
        for key in self.key_iterator(d):
            d[key] = self._scale(torch.as_tensor(d[key]), torch.from_numpy(weight.astype(np.float32)))
        return d

    def _smooth(self, region: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(region.astype(np.float32), self.sigma) if region.any() else np.zeros(region.shape, np.float32)

    @staticmethod
    def _scale(image: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        out = image.clone()
        for channel in POSTS:
            out[channel] = image[PRE] + (image[channel] - image[PRE]) * weight
        out[SUBTRACTION] = out[POSTS[0]] - out[PRE]
        return out
