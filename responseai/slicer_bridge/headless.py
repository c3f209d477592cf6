"""A real MRML scene without the Slicer application, for CI, the CLI and offscreen rendering.

``trame-slicer``'s :class:`SlicerApp` builds the scene and registers the module logics
(colours, volumes, segmentations, subject hierarchy) exactly as Slicer's core application
does, so headless code sees the same default colour tables and segmentation converters.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

# Every headless app lives until the process ends. Module logics, displayable managers and
# offscreen views hold raw pointers into an app; letting the garbage collector destroy one at
# an arbitrary moment (while another app renders) crashed the process intermittently.
_ALIVE: list = []


def headless_app():
    """Create a headless Slicer application core; keep the returned object alive with the scene.

    Module logics keep raw pointers to the application logic: dropping the app while using its
    scene crashes the process (see SLICER-CORE-NOTES.md), hence one object that owns both, kept
    alive for the rest of the process.
    """
    from trame_slicer.core import SlicerApp

    app = SlicerApp()
    _ALIVE.append(app)
    log.debug("headless Slicer scene ready")
    return app
