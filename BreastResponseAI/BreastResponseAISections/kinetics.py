"""DCE kinetics panel of BreastResponseAI: colour map, SER, FTV, worst curve, baseline → follow-up.

Thin Qt skin over ``BreastResponseAILib.kinetics`` (MRML + core, tested headless): the baseline
exam is the module form's (pre, post1, post2, tumour segment); this panel adds the optional
follow-up exam and runs ``responseai predict kinetics`` in the background like the form does.
"""

import slicer
from slicer.i18n import tr as _

from ResponseAICommonLib.widget import ResponseAISection

FOLLOWUP_SELECTORS = {"pre": "followupPreSelector", "post1": "followupPost1Selector", "post2": "followupPost2Selector"}
# The baseline is what the module form shows (read from its selectors: they are current even before the
# parameter node has caught up with a change).
FORM_SELECTORS = {"pre": "preSelector", "post1": "post1Selector", "post2": "post2Selector"}
FORM_SEGMENTATION = "segmentationSelector"


class KineticsSection(ResponseAISection):
    """Kinetic colour map, SER, FTV and worst curve of the form's exam; ΔFTV against a follow-up exam."""

    title = _("DCE kinetics (FTV, SER, curves)")
    uiFile = "UI/KineticsSection.ui"

    def setupSection(self) -> None:
        self.ui.useFollowupSeriesButton.connect("clicked(bool)", self.onUseFollowupSeries)
        for name in (*FOLLOWUP_SELECTORS.values(), "followupSegmentationSelector"):
            getattr(self.ui, name).connect("currentNodeChanged(vtkMRMLNode*)", self.updateRunButton)
        for name in (*FORM_SELECTORS.values(), FORM_SEGMENTATION):
            getattr(self.moduleWidget.ui, name).connect("currentNodeChanged(vtkMRMLNode*)", self.updateRunButton)

    def _baseline(self) -> tuple:
        form = self.moduleWidget.ui
        phases = {phase: getattr(form, selector).currentNode() for phase, selector in FORM_SELECTORS.items()}
        return phases, getattr(form, FORM_SEGMENTATION).currentNode()

    def _followup(self) -> dict:
        return {phase: getattr(self.ui, selector).currentNode() for phase, selector in FOLLOWUP_SELECTORS.items()}

    def onUseFollowupSeries(self) -> None:
        """The follow-up DCE series' frames fill the three follow-up selectors; the status line says which and why."""
        sequence = self.ui.followupSeriesSelector.currentNode()
        if sequence is None:
            self.ui.statusLabel.text = _("Select a follow-up DCE series (a sequence) first.")
            return
        core = self.logic.core  # installs the dependencies (with consent) before the Lib imports the core
        from BreastResponseAILib.kinetics import KineticsLogic

        with slicer.util.tryWithErrorDisplay(_("Could not take the follow-up phases from the DCE series."), waitCursor=True):
            nodes, reason = KineticsLogic(core.scene).phases_from_sequence(sequence, self.ui.followupFramesEdit.text)
            for phase, selector in FOLLOWUP_SELECTORS.items():
                getattr(self.ui, selector).setCurrentNode(nodes[phase])
            self.ui.statusLabel.text = reason

    def readiness(self) -> tuple:
        phases, segmentation = self._baseline()
        if any(node is None for node in phases.values()) or segmentation is None:
            return False, _("Select pre, post-contrast 1 and 2 and the tumour segmentation above")
        followup = [node is not None for node in self._followup().values()]
        if any(followup) and not all(followup):
            return False, _("Select all three follow-up phases, or none")
        return True, _("Compute the kinetics") if not any(followup) else _("Compute the kinetics and the change")

    def prepareJob(self):
        core = self.logic.core  # installs the dependencies (with consent) before the Lib imports the core
        from BreastResponseAILib.kinetics import KineticsLogic

        phases, segmentation = self._baseline()
        followup = self._followup()
        return KineticsLogic(core.scene).prepare_job(
            phases["post1"].GetName(), phases, segmentation, followup, self.ui.followupSegmentationSelector.currentNode(),
            bspline=self.ui.bsplineCheckBox.checked)

    def importResults(self, job, previous):
        core = self.logic.core
        from BreastResponseAILib.kinetics import KineticsLogic

        return KineticsLogic(core.scene).import_results(job, previous)

    def showResults(self, results) -> None:
        """post1 with the kinetic classes as the label layer; the curves chart and the table in the layout."""
        slicer.util.setSliceViewerLayers(background=self._job.reference, label=results.nodes["class"], labelOpacity=0.6)
        layoutManager = slicer.app.layoutManager()
        layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpPlotTableView)
        selection = slicer.app.applicationLogic().GetSelectionNode()
        selection.SetActivePlotChartID(results.nodes["chart"].GetID())
        selection.SetActiveTableID(results.nodes["table"].GetID())
        slicer.app.applicationLogic().PropagatePlotChartSelection()
        slicer.app.applicationLogic().PropagateTableSelection()
        changes = results.record.get("changes")
        summary = results.record["baseline"]
        text = _("FTV {ftv:.2f} ml, worst curve {curve}").format(ftv=summary["ftv_ml"],
                                                                 curve=summary["worst_curve"] or _("none"))
        if changes and changes["delta_ftv_percent"] is not None:
            text += _(", ΔFTV {delta:+.0f} %").format(delta=changes["delta_ftv_percent"])
        self.ui.statusLabel.text = text
