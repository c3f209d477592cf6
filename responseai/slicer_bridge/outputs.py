"""Results as proper MRML: heatmap volumes with a perceptual colour map, and result tables.

Re-running a case must update the nodes it made before instead of piling up copies, so each
``add_*`` has an ``update_*`` twin and a ``set_*`` that picks between them given the previous
node (or ``None``). Nothing here imports Qt: the same calls run inside Slicer and on a headless
scene in CI, and :func:`show_overlay` simply finds no slice views there.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import vtk

from responseai.errors import GeometryMismatchError, ResponseAIError
from responseai.image import Image
from responseai.reports.formatting import format_value
from responseai.slicer_bridge.nodes import add_volume_node, update_volume_node, volume_node_to_image

# Slicer ships Inferno as a colour file; the slicer-core wheel does not, so headless scenes get
# the same 64 inferno samples (from matplotlib) as a procedural node under this name.
SLICER_INFERNO_ID = "vtkMRMLColorTableNodeFileInferno.txt"
HEATMAP_COLOR_NAME = "ResponseAI Inferno"
HEATMAP_LOWER_THRESHOLD = 0.2  # weak attention is transparent: inferno's dark low end would shade the anatomy
HEATMAP_OPACITY = 0.4  # enough to read the map, little enough to read the anatomy under it
HEATMAP_ROLE = "heatmap"


def _inferno_samples(n: int = 64) -> np.ndarray:
    """RGB samples of the perceptually uniform *inferno* map (matplotlib's table)."""
    from matplotlib import colormaps

    return colormaps["inferno"](np.linspace(0, 1, n))[:, :3]


def heatmap_color_node(scene):
    """Slicer's own Inferno table when the app loaded it, else one procedural inferno node per scene."""
    for node in (scene.GetNodeByID(SLICER_INFERNO_ID), scene.GetFirstNodeByName(HEATMAP_COLOR_NAME)):
        if node is not None:
            return node
    node = scene.AddNewNodeByClass("vtkMRMLProceduralColorNode", HEATMAP_COLOR_NAME)
    node.SetAttribute("Category", "ResponseAI")
    function = node.GetColorTransferFunction()
    samples = _inferno_samples()
    for value, (r, g, b) in zip(np.linspace(0, 1, len(samples)), samples):
        function.AddRGBPoint(float(value), float(r), float(g), float(b))
    return node


def label_color_table(scene, name: str, labels: Mapping[int, str], colors: Mapping[int, tuple],
                      transparent: tuple[int, ...] = ()):
    """The scene's one user colour table called ``name`` (created on first use), names and colours set.

    ``transparent`` labels get opacity 0 (e.g. "not assessed"), so a label-map overlay shows
    only what was classified. Used by every label map a family shows (kinetic classes…), in
    Slicer and in the browser viewer alike.
    """
    node = scene.GetFirstNodeByName(name)
    if node is None:
        node = scene.AddNewNodeByClass("vtkMRMLColorTableNode", name)
        node.SetTypeToUser()
        node.SetAttribute("Category", "ResponseAI")
    node.SetNumberOfColors(len(labels))
    for value, label in labels.items():
        node.SetColor(value, label, *colors[value], 0.0 if value in transparent else 1.0)
    return node


def _in_scene(scene, node) -> bool:
    return node is not None and bool(scene.IsNodePresent(node))


def require_in_scene(scene, node, what: str) -> None:
    """A job's input node must still be there when its results arrive (the scene may have been closed)."""
    if not _in_scene(scene, node):
        raise ResponseAIError(f"{what} is no longer in the scene (was the scene closed or the node deleted?): "
                              "the results were not loaded; run the prediction again")


def _checked_heatmap(heatmap: Image, reference_node) -> Image:
    """Heatmap values clipped to [0, 1]; refused when it is not on the reference volume's grid.

    A heatmap shifted by one voxel against its MRI would point at the wrong anatomy without
    any visible error, so the grid is checked rather than trusted.
    """
    if reference_node is not None:
        diffs = heatmap.grid_differences(volume_node_to_image(reference_node))
        if diffs:
            raise GeometryMismatchError(f"heatmap is not on {reference_node.GetName()}'s grid: {'; '.join(diffs)}")
    return heatmap.with_array(np.clip(np.nan_to_num(heatmap.array.astype(np.float32)), 0.0, 1.0))


def _style_heatmap(node, reference_node) -> None:
    """Inferno over a fixed 0–1 window (auto W/L would stretch noise), values < threshold transparent."""
    scene = node.GetScene()
    display = node.GetDisplayNode()
    display.SetAndObserveColorNodeID(heatmap_color_node(scene).GetID())
    display.AutoWindowLevelOff()
    display.SetWindowLevelMinMax(0.0, 1.0)
    display.ApplyThresholdOn()
    display.SetLowerThreshold(HEATMAP_LOWER_THRESHOLD)
    display.SetUpperThreshold(1.0)
    node.SetAttribute("ResponseAI.role", HEATMAP_ROLE)
    if reference_node is not None:
        node.SetAndObserveTransformNodeID(reference_node.GetTransformNodeID())
        node.SetNodeReferenceID("ResponseAI.reference", reference_node.GetID())


def add_heatmap_node(scene, heatmap: Image, name: str, reference_node=None):
    """A new [0, 1] scalar volume on the reference volume's grid, styled as a heatmap overlay."""
    node = add_volume_node(scene, _checked_heatmap(heatmap, reference_node), name)
    _style_heatmap(node, reference_node)
    return node


def update_heatmap_node(node, heatmap: Image, reference_node=None):
    """Replace a heatmap node's values in place (a re-run keeps the node the user arranged)."""
    update_volume_node(node, _checked_heatmap(heatmap, reference_node))
    _style_heatmap(node, reference_node)
    return node


def set_heatmap(scene, heatmap: Image, name: str, previous=None, reference_node=None):
    """Update ``previous`` if it is still in the scene (renamed for this case), else add a new heatmap node."""
    if _in_scene(scene, previous):
        previous.SetName(name)
        return update_heatmap_node(previous, heatmap, reference_node)
    return add_heatmap_node(scene, heatmap, name, reference_node)


def add_results_table(scene, rows: Mapping[str, object], name: str):
    """A new two-column (quantity, value) table node."""
    return update_results_table(scene.AddNewNodeByClass("vtkMRMLTableNode", name), rows)


def update_results_table(node, rows: Mapping[str, object]):
    """Rewrite a table node's rows; values are text, formatted as the user reads them."""
    table = node.GetTable()
    table.Initialize()
    for title in ("Quantity", "Value"):
        column = vtk.vtkStringArray()
        column.SetName(title)
        table.AddColumn(column)
    for key, value in rows.items():
        row = table.InsertNextBlankRow()
        table.SetValue(row, 0, vtk.vtkVariant(str(key)))
        table.SetValue(row, 1, vtk.vtkVariant(format_value(value)))
    node.SetUseColumnTitleAsColumnHeader(True)
    node.Modified()
    return node


def set_results_table(scene, rows: Mapping[str, object], name: str, previous=None):
    """Update ``previous`` if it is still in the scene (renamed for this case), else add a new results table."""
    if _in_scene(scene, previous):
        previous.SetName(name)
        return update_results_table(previous, rows)
    return add_results_table(scene, rows, name)


def table_rows(node) -> dict[str, str]:
    """Read a (quantity, value) table back, e.g. for a report or a test."""
    table = node.GetTable()
    return {table.GetValue(r, 0).ToString(): table.GetValue(r, 1).ToString() for r in range(table.GetNumberOfRows())}


def show_overlay(background, foreground, opacity: float = HEATMAP_OPACITY) -> int:
    """Background volume with the heatmap over it in every slice view; returns the views set.

    Works on slice composite nodes, so it needs no Qt; a headless scene has none and nothing
    happens (0 is returned).
    """
    scene = background.GetScene()
    count = scene.GetNumberOfNodesByClass("vtkMRMLSliceCompositeNode")
    for index in range(count):
        composite = scene.GetNthNodeByClass(index, "vtkMRMLSliceCompositeNode")
        composite.SetBackgroundVolumeID(background.GetID())
        composite.SetForegroundVolumeID(foreground.GetID() if foreground is not None else None)
        composite.SetForegroundOpacity(opacity)
    return count
