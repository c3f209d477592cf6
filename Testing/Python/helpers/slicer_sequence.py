"""Test helper: a sequence node as Slicer's DICOM import makes of a dynamic series (one volume per time point)."""

from __future__ import annotations

from responseai.image import Image


def add_sequence(scene, images: list[Image], times: list[str], unit: str = "s", name: str = "DCE series"):
    """A vtkMRMLSequenceNode holding ``images`` at index values ``times`` (text index when ``unit`` is empty)."""
    from responseai.slicer_bridge.nodes import add_volume_node

    sequence = scene.AddNewNodeByClass("vtkMRMLSequenceNode", name)
    sequence.SetIndexName("time")
    sequence.SetIndexUnit(unit)
    if not unit:
        sequence.SetIndexType(sequence.TextIndex)
    for image, time in zip(images, times):
        frame = add_volume_node(scene, image, f"frame {time}")
        sequence.SetDataNodeAtValue(frame, time)
        scene.RemoveNode(frame)  # the sequence keeps its own copy
    return sequence
