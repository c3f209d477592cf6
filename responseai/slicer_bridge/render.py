"""Offscreen snapshots drawn by Slicer's own slice views, for reports written without the app.

A report figure must show what the radiologist sees in Slicer — the same reslicing,
interpolation, colour map, threshold and segment outline — so the images are rendered by
``vtkMRMLSliceLogic`` and Slicer's displayable managers (via ``trame-slicer``'s
:class:`SliceView`), not re-implemented with matplotlib. Inside the Slicer application the
module grabs its own slice views instead; this module serves the CLI, batch jobs and CI.

OpenGL without a display: :func:`configure_offscreen_opengl` picks EGL (Mesa's libEGL renders
on the CPU, no X server needed) or else OSMesa, by setting ``VTK_DEFAULT_OPENGL_WINDOW``
before the first render window is created. A value the user already set, or a ``DISPLAY``,
is respected.
"""

from __future__ import annotations

import ctypes.util
import logging
import os
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import vtk

from responseai.errors import ResponseAIError
from responseai.slicer_bridge.outputs import HEATMAP_OPACITY

log = logging.getLogger(__name__)

OPENGL_WINDOW_ENV = "VTK_DEFAULT_OPENGL_WINDOW"
VIEWS = {"axial": "Axial", "sagittal": "Sagittal", "coronal": "Coronal"}
VIEW_TAG_PREFIX = "ResponseAISnapshot"
# Cyan never occurs in the inferno map, so the tumour outline stays visible on the heatmap.
OUTLINE_COLOR = (0.0, 0.9, 1.0)
OUTLINE_OPACITY = 1.0
FILL_OPACITY = 0.15  # a hint of fill; more would hide the heatmap and the enhancement under it
OUTLINE_WIDTH_PX = 2

_factories: "weakref.WeakKeyDictionary[object, object]" = weakref.WeakKeyDictionary()


class RenderError(ResponseAIError):
    """Offscreen rendering is not possible here (no OpenGL context could be made)."""


def configure_offscreen_opengl() -> str | None:
    """Choose VTK's OpenGL window for a machine without a display; returns the class in use.

    Must run before the first ``vtkRenderWindow`` is created. Keeps an explicit setting; with
    a ``DISPLAY`` (or Wayland) VTK's default X/GLX window works and nothing is changed.
    """
    if os.environ.get(OPENGL_WINDOW_ENV):
        return os.environ[OPENGL_WINDOW_ENV]
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return None
    for library, window in (("EGL", "vtkEGLRenderWindow"), ("OSMesa", "vtkOSOpenGLRenderWindow")):
        if ctypes.util.find_library(library):
            os.environ[OPENGL_WINDOW_ENV] = window
            log.info("no display: rendering offscreen with %s", window)
            return window
    log.warning("no display, no libEGL and no libOSMesa: offscreen rendering will likely fail")
    return None


def _view_factory(app):
    """One offscreen DirectViewFactory per app, kept out of the app's own view manager.

    Snapshot views are built by this private factory so they never enter a trame layout (where
    the view manager blocks rendering of views not on screen) and are reused across calls.
    """
    from trame_slicer.views import DirectViewFactory

    factory = _factories.get(app)
    if factory is None:
        factory = _factories[app] = DirectViewFactory(do_render_offscreen=True)
    return factory


def discard_snapshot_views(app) -> None:
    """Finalize and drop the app's snapshot views (call before clearing or abandoning its scene).

    Views left alive over a cleared scene, in a process that goes on to build other apps and
    views, were the likely cause of a rare segfault in CI (one full test run in several, always
    while a later test added a segmentation display node). Dropping them when their scene is
    done with removes that state; the next snapshot builds fresh views.
    """
    factory = _factories.pop(app, None)
    if factory is None:
        return
    for name in VIEWS.values():
        tag = f"{VIEW_TAG_PREFIX}{name}"
        view = factory.get_view(tag)
        if view is not None:
            view.finalize()
            factory.remove_view(tag)


def _direction_letter(vector: np.ndarray) -> str:
    """Anatomical letter (R/L, A/P, S/I) of the RAS axis a screen direction mostly follows."""
    axis = int(np.argmax(np.abs(vector)))
    return ("RL", "AP", "SI")[axis][0 if vector[axis] > 0 else 1]


def orientation_letters(slice_node) -> dict[str, str]:
    """Letters for the four screen edges, read from the slice node's SliceToRAS matrix."""
    matrix = slice_node.GetSliceToRAS()
    right = np.array([matrix.GetElement(r, 0) for r in range(3)])
    up = np.array([matrix.GetElement(r, 1) for r in range(3)])
    return {"left": _direction_letter(-right), "right": _direction_letter(right),
            "top": _direction_letter(up), "bottom": _direction_letter(-up)}


def _add_orientation_labels(view, size: Sequence[int]) -> None:
    """Burn R/L, A/P, S/I letters into the view: a snapshot leaves Slicer without its context."""
    letters = orientation_letters(view.get_view_node())
    anchors = {"left": (0.015, 0.5, 0, 1), "right": (0.985, 0.5, 2, 1),
               "top": (0.5, 0.985, 1, 2), "bottom": (0.5, 0.015, 1, 0)}
    for edge, (x, y, justify, vertical) in anchors.items():
        actor = vtk.vtkTextActor()
        actor.SetInput(letters[edge])
        actor.GetPositionCoordinate().SetCoordinateSystemToNormalizedViewport()
        actor.SetPosition(x, y)
        prop = actor.GetTextProperty()
        prop.SetFontSize(max(14, int(min(size) / 14)))  # still legible at 1/3 page width
        prop.BoldOn()
        prop.ShadowOn()
        prop.SetColor(1.0, 1.0, 1.0)
        prop.SetJustification(justify)
        prop.SetVerticalJustification(vertical)
        view.first_renderer().AddActor2D(actor)


def _snapshot_view(app, key: str, size: Sequence[int]):
    """The offscreen slice view for one orientation, created on first use."""
    from trame_slicer.views import NoScheduleRendering, ViewLayoutDefinition

    factory = _view_factory(app)
    tag = f"{VIEW_TAG_PREFIX}{VIEWS[key]}"
    view = factory.get_view(tag)
    if view is None:
        view = factory.create_view(ViewLayoutDefinition.slice_view(VIEWS[key], label=tag), app.scene, app.app_logic)
        view.set_scheduled_render(NoScheduleRendering())  # batch: render once, when asked
        _add_orientation_labels(view, size)
    view.set_render_blocked(False)
    view.render_window().SetSize(int(size[0]), int(size[1]))
    return view


SNAPSHOT_DISPLAY_NAME = "ResponseAI snapshot display"


def _snapshot_display_node(segmentation_node, view_node_ids: list[str]):
    """The segmentation's snapshot display node: created on first use, then reused.

    Adding a display node, removing it and adding another crashed VTK now and then (the slice
    views' displayable managers still referred to the removed one's pipeline), so the node is
    kept between snapshots, hidden, and shown only in the snapshot views.
    """
    for index in range(segmentation_node.GetNumberOfDisplayNodes()):
        node = segmentation_node.GetNthDisplayNode(index)
        if node is not None and node.GetName() == SNAPSHOT_DISPLAY_NAME:
            node.SetViewNodeIDs(view_node_ids)
            return node
    snapshot = segmentation_node.GetScene().AddNewNodeByClass("vtkMRMLSegmentationDisplayNode", SNAPSHOT_DISPLAY_NAME)
    snapshot.SetViewNodeIDs(view_node_ids)
    snapshot.SetOpacity2DFill(FILL_OPACITY)
    snapshot.SetOpacity2DOutline(OUTLINE_OPACITY)
    snapshot.SetSliceIntersectionThickness(OUTLINE_WIDTH_PX)
    segmentation_node.AddAndObserveDisplayNodeID(snapshot.GetID())
    return snapshot


@contextmanager
def _snapshot_segment_display(segmentation_node, view_node_ids: list[str],
                              color: tuple[float, float, float] | None) -> Iterator[None]:
    """Draw the segments in the snapshot views through a display node of their own.

    Slicer draws a segment's fill over black when its display pipeline was built before the
    view had a background volume, and the snapshot views get theirs only now. A display node
    created after the backgrounds are set renders correctly, and also carries the snapshot
    style (light fill, solid outline, contrasting colour) without touching the user's display
    node, which is only hidden meanwhile.
    """
    display = segmentation_node.GetDisplayNode() if segmentation_node is not None else None
    if display is None:
        yield
        return
    snapshot = _snapshot_display_node(segmentation_node, view_node_ids)
    was_visible = display.GetVisibility()
    display.SetVisibility(False)
    snapshot.SetVisibility(True)
    segmentation = segmentation_node.GetSegmentation()
    for index in range(segmentation.GetNumberOfSegments()):
        segment_id = segmentation.GetNthSegmentID(index)
        if color is not None:
            snapshot.SetSegmentOverrideColor(segment_id, *color)
        else:
            snapshot.UnsetSegmentOverrideColor(segment_id)
    try:
        yield
    finally:
        snapshot.SetVisibility(False)
        display.SetVisibility(was_visible)


def _capture(view, path: Path) -> Path:
    """Render the view once and write its pixels (from the back buffer) to a PNG."""
    view.render()
    grabber = vtk.vtkWindowToImageFilter()
    grabber.SetInput(view.render_window())
    grabber.ReadFrontBufferOff()
    grabber.Update()
    if grabber.GetOutput().GetNumberOfPoints() == 0:
        raise RenderError(f"the offscreen {path.stem} view produced no pixels ({OPENGL_WINDOW_ENV}="
                          f"{os.environ.get(OPENGL_WINDOW_ENV)!r}): is Mesa's libEGL or libOSMesa installed?")
    writer = vtk.vtkPNGWriter()
    writer.SetFileName(str(path))
    writer.SetInputConnection(grabber.GetOutputPort())
    writer.Write()
    return path


def _show_layers(view, background_node, foreground_node, opacity: float) -> None:
    """Background before anything else (else Slicer draws the segment fill over black)."""
    view.set_background_volume_id(background_node.GetID())
    view.set_foreground_volume_id(foreground_node.GetID() if foreground_node is not None else None)
    view.set_foreground_opacity(opacity if foreground_node is not None else 0.0)


def render_orthogonal_snapshots(
    app,
    background_node,
    foreground_node,
    segmentation_node,
    centre_ras: Sequence[float],
    out_dir: str | Path,
    size: tuple[int, int] = (512, 512),
    opacity: float = HEATMAP_OPACITY,
    outline_color: tuple[float, float, float] | None = OUTLINE_COLOR,
) -> dict[str, Path]:
    """Axial, sagittal and coronal PNGs through ``centre_ras``, drawn by Slicer's slice views.

    ``app`` is a headless ``SlicerApp`` (:func:`responseai.slicer_bridge.headless.headless_app`)
    owning the nodes' scene. Each view is fitted to the background volume and only its slice
    offset is moved to the point, so the whole anatomy stays in frame. ``foreground_node``
    (a heatmap) and ``segmentation_node`` may be ``None``; ``outline_color=None`` keeps the
    segments' own colours. Returns ``{"axial": path, "sagittal": path, "coronal": path}``.
    """
    configure_offscreen_opengl()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    views = {key: _snapshot_view(app, key, size) for key in VIEWS}
    for view in views.values():
        _show_layers(view, background_node, foreground_node, opacity)
    paths = {}
    view_node_ids = [view.get_view_node().GetID() for view in views.values()]
    with _snapshot_segment_display(segmentation_node, view_node_ids, outline_color):
        for key, view in views.items():
            view.fit_view_to_content()
            view.get_view_node().JumpSliceByOffsetting(*(float(c) for c in centre_ras))
            paths[key] = _capture(view, out_dir / f"{key}.png")
    log.info("rendered %s snapshots through RAS %s into %s", ", ".join(paths), [round(float(c), 1) for c in centre_ras], out_dir)
    return paths


def snapshot_slice_node(app, key: str):
    """The slice node behind a snapshot view (its XYToRAS maps pixels to patient coordinates)."""
    view = _view_factory(app).get_view(f"{VIEW_TAG_PREFIX}{VIEWS[key]}")
    return view.get_view_node() if view is not None else None
