"""Cross-modal diagnosis panel: mammogram volume + pathology tile(s) → ``responseai predict crossmodal``.

Thin on purpose: everything it checks, writes and imports is ``BreastResponseAILib.crossmodal``
(MRML + core, tested on a real scene); this file only wires the widgets to it.
"""

from __future__ import annotations

import slicer
from slicer.i18n import tr as _

from ResponseAICommonLib.widget import ResponseAISection


class CrossModalSection(ResponseAISection):
    title = _("Cross-modal diagnosis (mammogram + pathology)")
    uiFile = "UI/CrossModalSection.ui"

    def __init__(self, moduleWidget) -> None:
        super().__init__(moduleWidget)
        self._crossmodal = None

    @property
    def crossmodal(self):
        """The MRML + core logic, created after the module's dependency check (``logic.core``)."""
        if self._crossmodal is None:
            self.logic.core  # noqa: B018  (installs the dependencies on first use)
            from BreastResponseAILib.crossmodal import CrossModalLogic

            self._crossmodal = CrossModalLogic(slicer.mrmlScene)
        return self._crossmodal

    def setupSection(self) -> None:
        self.ui.mammogramSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.updateRunButton)

    def readiness(self) -> tuple:
        if self.ui.mammogramSelector.currentNode() is None:
            return False, _("Select the 2D mammogram volume")
        return True, _("Run the cross-modal diagnosis (pathology is optional)")

    def prepareJob(self):
        node = self.ui.mammogramSelector.currentNode()
        return self.crossmodal.prepare_job(node.GetName(), node, self.ui.pathologyLineEdit.text.strip() or None)

    def importResults(self, job, previous):
        return self.crossmodal.import_results(job, previous)

    def showResults(self, results) -> None:
        from responseai.slicer_bridge.outputs import show_overlay

        show_overlay(self.ui.mammogramSelector.currentNode(), results.heatmap)
        self.logic.showTable(results.table)
        self.ui.statusLabel.text = results.record["conclusion"]
