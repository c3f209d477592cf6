"""MRML ⇄ core conversions: volume and segmentation nodes to :class:`Image` and back.

Imports only ``slicer`` (MRML, from the Slicer app or the ``slicer-core`` wheel) and the core,
never Qt, so the same code runs inside Slicer and in CI on a headless scene. Every function
works on the scene the given node belongs to, not on the ``slicer.mrmlScene`` global, so a
test can hold several scenes and nothing depends on the application object.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from responseai.dynamic import DynamicSeries, dynamic_phases, frames_named, index_times, parse_frames
from responseai.errors import EmptyMaskError, GeometryMismatchError, InvalidImageError, MissingSegmentError
from responseai.image import Image
from responseai.io import TUMOUR_SEGMENT, validate_mask

TUMOUR_COLOR = (0.95, 0.84, 0.16)
# a phase node made from a timed sequence frame keeps the frame's start (s after frame 0) for the kinetics curves
FRAME_TIME_ATTRIBUTE = "ResponseAI.FrameTimeSeconds"


def _matrix_to_array(matrix: vtk.vtkMatrix4x4) -> np.ndarray:
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def _array_to_matrix(array: np.ndarray) -> vtk.vtkMatrix4x4:
    matrix = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, float(array[r, c]))
    return matrix


def _set_voxels(node, array: np.ndarray) -> None:
    """Give a volume node its voxel values (array order k, j, i) as a fresh vtkImageData."""
    array = np.ascontiguousarray(array)
    image_data = vtk.vtkImageData()
    image_data.SetDimensions(array.shape[2], array.shape[1], array.shape[0])
    vtk_array = numpy_support.numpy_to_vtk(array.ravel(), deep=True)
    image_data.GetPointData().SetScalars(vtk_array)
    node.SetAndObserveImageData(image_data)


def _set_geometry(node, image: Image) -> None:
    node.SetIJKToRASMatrix(_array_to_matrix(image.ijk_to_ras()))


def add_volume_node(scene, image: Image, name: str, class_name: str = "vtkMRMLScalarVolumeNode"):
    """Add a scalar (or labelmap) volume node carrying ``image``'s voxels and geometry."""
    if image.array.ndim != 3:
        raise InvalidImageError(f"{name}: only 3D scalar volumes can become volume nodes")
    node = scene.AddNewNodeByClass(class_name, name)
    _set_voxels(node, image.array)
    _set_geometry(node, image)
    node.CreateDefaultDisplayNodes()
    return node


def update_volume_node(node, image: Image) -> None:
    """Replace voxels and geometry of an existing node (re-runs reuse their output nodes)."""
    _set_voxels(node, image.array)
    _set_geometry(node, image)
    node.Modified()


def volume_node_to_image(node) -> Image:
    """Voxels and world geometry of a volume node, a parent linear transform included."""
    if node is None or node.GetImageData() is None:
        raise InvalidImageError("the volume node has no image data")
    image_data = node.GetImageData()
    dims = image_data.GetDimensions()
    scalars = numpy_support.vtk_to_numpy(image_data.GetPointData().GetScalars())
    if scalars.ndim != 1:
        raise InvalidImageError(f"{node.GetName()}: multi-component volumes are not supported")
    array = scalars.reshape(dims[2], dims[1], dims[0]).copy()
    ijk_to_ras = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(ijk_to_ras)
    matrix = _matrix_to_array(ijk_to_ras)
    transform = node.GetParentTransformNode()
    if transform is not None:
        if not transform.IsTransformToWorldLinear():
            raise GeometryMismatchError(
                f"{node.GetName()} is under a non-linear transform; harden it (Data module) before running"
            )
        to_world = vtk.vtkMatrix4x4()
        transform.GetMatrixTransformToWorld(to_world)
        matrix = _matrix_to_array(to_world) @ matrix
    return Image.from_ijk_to_ras(array, matrix)


def sequence_to_series(sequence_node) -> DynamicSeries:
    """A sequence of volumes (how Slicer loads a dynamic DICOM series) as a dynamic series; frame times are read
    from the index values when the sequence is indexed by time in s, ms or min."""
    if sequence_node is None or sequence_node.GetNumberOfDataNodes() < 2:
        raise InvalidImageError("the DCE series needs a pre-contrast and at least one post-contrast frame")
    name = sequence_node.GetName()
    frames = []
    for i in range(sequence_node.GetNumberOfDataNodes()):
        node = sequence_node.GetNthDataNode(i)
        if not node.IsA("vtkMRMLScalarVolumeNode"):
            raise InvalidImageError(f"{name}: frame {i} is a {node.GetClassName()}, not a scalar volume")
        frames.append(volume_node_to_image(node))
    if len({(f.shape, f.spacing) for f in frames}) > 1:
        raise GeometryMismatchError(f"{name}: its frames do not share one grid")
    numeric = sequence_node.GetIndexType() == sequence_node.NumericIndex
    values = [sequence_node.GetNthIndexValue(i) for i in range(len(frames))]
    return DynamicSeries(tuple(frames), index_times(values, sequence_node.GetIndexUnit()) if numeric else None, name)


def add_sequence_phases(scene, sequence_node, frames: str | None = None,
                        check: Callable[[dict[str, Image]], object] | None = None) -> tuple[dict, str]:
    """A dynamic series loaded as a sequence → one volume node per chosen phase (``responseai.dynamic``'s choice,
    or ``frames`` such as ``"0,2,5"``), and the sentence saying which frames and why. ``check`` (a family's phase
    checks) runs before the first node is added; what it refuses names the frames it came from."""
    series = sequence_to_series(sequence_node)
    phases, choice = dynamic_phases(series, parse_frames(frames))
    if check is not None:
        with frames_named(choice):
            check(phases)
    where, nodes = choice.sources(series), {}
    for name, image in phases.items():
        nodes[name] = add_volume_node(scene, image, f"{name}: {where[name]}")
        if series.times_s is not None:
            nodes[name].SetAttribute(FRAME_TIME_ATTRIBUTE, f"{series.times_s[choice.indices[name]]:g}")
    return nodes, choice.reason


def frame_times(phase_nodes: Mapping[str, object], phases: Sequence[str]) -> tuple[float, ...] | None:
    """The phases' frame times (s) when every one came from a timed sequence (``add_sequence_phases``), else None:
    a plot at partly known times would mislead more than the nominal ones."""
    values = [node.GetAttribute(FRAME_TIME_ATTRIBUTE) if node is not None else None
              for node in (phase_nodes.get(p) for p in phases)]
    return None if any(v is None for v in values) else tuple(float(v) for v in values)


def _node_ids(scene) -> set[str]:
    return {scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())}


@contextmanager
def _temporary_labelmap(scene, image: Image) -> Iterator:
    """A labelmap node that exists only for one import/export.

    Everything created meanwhile (the node, its display node, the colour table an export adds)
    is removed afterwards, so the scene is left exactly as it was.
    """
    before = _node_ids(scene)
    node = add_volume_node(scene, image, "__responseai_temp__", "vtkMRMLLabelMapVolumeNode")
    try:
        yield node
    finally:
        for node_id in _node_ids(scene) - before:
            created = scene.GetNodeByID(node_id)
            if created is not None:
                scene.RemoveNode(created)


def add_segmentation_node(
    scene, mask: Image, reference_node, name: str = TUMOUR_SEGMENT, segment_name: str = TUMOUR_SEGMENT,
    color: tuple[float, float, float] = TUMOUR_COLOR,
):
    """A segmentation node with one segment from a binary mask on ``reference_node``'s grid."""
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    node.CreateDefaultDisplayNodes()
    node.SetReferenceImageGeometryParameterFromVolumeNode(reference_node)
    set_segment_mask(node, mask, segment_name, color)
    return node


def set_segment_mask(node, mask: Image, segment_name: str = TUMOUR_SEGMENT,
                     color: tuple[float, float, float] = TUMOUR_COLOR) -> str:
    """Create or replace the named segment from a binary mask; returns the segment id."""
    if not np.any(mask.array):
        raise EmptyMaskError(f"{segment_name}: the mask is empty, no segment to create")
    segmentation = node.GetSegmentation()
    existing = segmentation.GetSegmentIdBySegmentName(segment_name)
    if existing:
        segmentation.RemoveSegment(existing)
    binary = mask.with_array((mask.array > 0).astype(np.uint8))
    with _temporary_labelmap(node.GetScene(), binary) as labelmap:
        ok = slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmap, node)
    if not ok:
        raise InvalidImageError(f"{segment_name}: Slicer could not import the mask as a segment")
    segment_id = segmentation.GetNthSegmentID(segmentation.GetNumberOfSegments() - 1)
    segment = segmentation.GetSegment(segment_id)
    segment.SetName(segment_name)
    segment.SetColor(*color)
    return segment_id


def segment_to_mask(node, segment_id: str, reference_node) -> Image:
    """The segment rasterised on ``reference_node``'s grid (user edits included), as uint8."""
    reference = volume_node_to_image(reference_node)
    ids = vtk.vtkStringArray()
    ids.InsertNextValue(segment_id)
    empty = reference.with_array(np.zeros(reference.shape, np.uint8))
    with _temporary_labelmap(node.GetScene(), empty) as labelmap:
        ok = slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(node, ids, labelmap, reference_node)
        if not ok:
            raise InvalidImageError(f"segment {segment_id} could not be exported on the reference grid")
        exported = volume_node_to_image(labelmap)
    diffs = exported.grid_differences(reference)
    if diffs:
        raise GeometryMismatchError(f"exported segment is not on the reference grid: {'; '.join(diffs)}")
    return reference.with_array((exported.array > 0).astype(np.uint8))


def tumour_segment_id(node, name: str = TUMOUR_SEGMENT) -> str:
    """The segment called ``name``, else the only segment; otherwise say which one to name."""
    segmentation = node.GetSegmentation()
    segment_id = segmentation.GetSegmentIdBySegmentName(name)
    if not segment_id and segmentation.GetNumberOfSegments() == 1:
        segment_id = segmentation.GetNthSegmentID(0)
    if not segment_id:
        names = [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]
        raise MissingSegmentError(f"segmentation '{node.GetName()}' has no segment named {name}; rename the tumour "
                                  f"segment to {name} (segments: {', '.join(names) or 'none'})")
    return segment_id


def read_tumour_segment(node, reference_node, name: str = TUMOUR_SEGMENT) -> Image:
    """The tumour segment on the reference grid, the user's edits included, checked non-empty."""
    if node is None:
        raise MissingSegmentError(f"select a tumour segmentation (a segment named {name}, or a single segment)")
    mask = segment_to_mask(node, tumour_segment_id(node, name), reference_node)
    validate_mask(mask, f"segment {name}")
    return mask
