"""The kinetics report's pictures: kinetic colour map over post1 with its legend, and the curves.

Drawn with matplotlib on an axial cut of an LPS-aligned grid around the ROI, whatever the
exam's stored orientation, so a sagittal or RAS-stored series reads the same way: anterior up,
the patient's right on the image's left (radiological). The slice is the one with the most FTV
voxels (the ROI's largest when there is no FTV).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from responseai.image import Image
from responseai.kinetics.analysis import world_points
from responseai.kinetics.constants import CLASS_COLORS, CLASS_NAMES, NOT_ASSESSED, PHASES
from responseai.spatial import crop_grid, to_canonical

DPI = 110
MARGIN_MM = 40.0  # anatomy shown around the ROI in the snapshot's plane


def _view_grid(roi: Image, step: float) -> Image:
    """An axial LPS grid over the ROI's slices, ``MARGIN_MM`` wider in-plane: bounded size on any exam."""
    points = world_points(roi.array > 0, roi)
    low, high = points.min(axis=0), points.max(axis=0)
    size = np.ceil((high - low + 2 * np.array([MARGIN_MM, MARGIN_MM, 0.0])) / step).astype(int) + 1
    return crop_grid((low + high) / 2, tuple(int(n) for n in size[::-1]), (step, step, step))


def _axial(image: Image, grid: Image, is_label: bool = False) -> np.ndarray:
    return to_canonical(image, grid, is_label).array


def kinetic_map_png(background: Image, classes: Image, roi: Image, ftv_slice_weight: Image, path: Path,
                    title: str) -> Path:
    """post1 in grey, kinetic classes in their colours (not-assessed voxels clear), ROI outline, legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    grid = _view_grid(roi, min(background.spacing))
    grey = _axial(background, grid)
    labels = _axial(classes, grid, is_label=True)
    outline = _axial(roi, grid, is_label=True)
    weight = _axial(ftv_slice_weight, grid, is_label=True)
    k = int(np.argmax(weight.sum(axis=(1, 2)))) if weight.any() else int(np.argmax(outline.sum(axis=(1, 2))))
    colours = ListedColormap([CLASS_COLORS[v] for v in sorted(CLASS_NAMES)])
    figure, axes = plt.subplots(figsize=(4.2, 4.2), dpi=DPI)
    low, high = np.percentile(grey, [1, 99.5])
    axes.imshow(grey[k], cmap="gray", vmin=low, vmax=high, interpolation="nearest")
    shown = np.ma.masked_equal(labels[k], NOT_ASSESSED)
    axes.imshow(shown, cmap=colours, vmin=-0.5, vmax=len(CLASS_NAMES) - 0.5, alpha=0.65, interpolation="nearest")
    if outline[k].any():
        axes.contour(outline[k], levels=[0.5], colors="cyan", linewidths=0.8)
    handles = [Patch(color=CLASS_COLORS[v], label=name) for v, name in CLASS_NAMES.items() if v != NOT_ASSESSED]
    axes.legend(handles=handles, loc="lower right", fontsize=7, framealpha=0.8)
    axes.set_title(title, fontsize=9)
    axes.set_axis_off()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def curves_png(curves: Mapping[str, Mapping[str, list[float] | None]], times_s: Mapping[str, tuple[float, ...]],
               path: Path) -> Path:
    """Mean relative enhancement per phase; one line per voxel group, dashed for the follow-up, each exam at its own
    phase times (the ticks are the baseline's; a follow-up at other times says them in its legend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {name: CLASS_COLORS[value] for value, name in CLASS_NAMES.items()}
    figure, axes = plt.subplots(figsize=(4.2, 4.2), dpi=DPI)
    for timepoint, style in (("baseline", "-"), ("followup", "--")):
        times = times_s[timepoint]
        other_times = timepoint == "followup" and tuple(times) != tuple(times_s["baseline"])
        label = "follow-up" + (f", at {' / '.join(f'{t:g}' for t in times)} s" if other_times else "") \
            if timepoint == "followup" else timepoint
        for group, values in (curves.get(timepoint) or {}).items():
            if values is not None:
                axes.plot(times, values, style, marker="o", color=colours.get(group, "0.2"), label=f"{group} ({label})")
    axes.set_xticks(times_s["baseline"], [f"{p}\n{t:g} s" for p, t in zip(PHASES, times_s["baseline"])], fontsize=7)
    axes.set_ylabel("mean relative enhancement (%)", fontsize=8)
    axes.set_title("Time–intensity curves of the lesion ROI", fontsize=9)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=6)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path
