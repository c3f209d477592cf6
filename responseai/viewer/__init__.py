"""Browser viewer: ``responseai serve`` (trame-slicer) on the same core and the same prediction job.

What a page shows is drawn by Slicer's own slice views (``vtkMRMLSliceLogic`` and its
displayable managers, via ``trame-slicer``), streamed to the browser. The prediction is *not*
re-implemented: a Run starts the very command the Slicer module's background job runs
(``responseai predict breast …`` in its own process) and its outputs are loaded onto the
scene with the ``slicer_bridge`` helpers; the report is ``responseai report``.

The viewer is part of the core base, so it imports a family only by name through the
registry (``registry.resolve("<package>.constants:CLINICAL_SCHEMA")``), never at import time,
and never the Slicer module folders. Pieces:

- :mod:`responseai.viewer.cases` — the cases offered (one folder or a manifest), paths
  confined to them, the family's clinical form schema and per-field messages (no trame);
- :mod:`responseai.viewer.jobs` — the prediction and report commands, run as subprocesses
  off the UI thread with progress read from their ``PROGRESS`` lines (no trame);
- :mod:`responseai.viewer.session` — the MRML side: one scene, nodes reused across cases and
  runs (no trame);
- :mod:`responseai.viewer.app` — the trame page and its server (imports trame lazily);
- :mod:`responseai.viewer.serve` — ``responseai serve`` (argument parsing, host safety).
"""
