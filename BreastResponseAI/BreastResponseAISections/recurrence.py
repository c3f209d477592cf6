"""Recurrence-risk panel of BreastResponseAI: pathology tiles, ultrasound, report text, clinical → RFS.

Thin Qt skin over ``BreastResponseAILib.recurrence`` (MRML + core, tested headless): it reads
the panel's inputs and runs ``responseai predict recurrence`` in the background like the form
does; the results are a table and a recurrence-free survival plot.
"""

import json

import slicer
from slicer.i18n import tr as _

from ResponseAICommonLib.widget import ResponseAISection


class RecurrenceSection(ResponseAISection):
    """Risk group, RFS at 3 / 5 / 7 years and per-modality attention; any modality may be missing, not all."""

    title = _("Recurrence risk (pathology, ultrasound, report, clinical)")
    uiFile = "UI/RecurrenceSection.ui"

    def setupSection(self) -> None:
        self.ui.ultrasoundSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.updateRunButton)
        self.ui.tilesFolderLineEdit.connect("textChanged(QString)", self.updateRunButton)
        self.ui.clinicalLineEdit.connect("textChanged(QString)", self.updateRunButton)
        self.ui.reportTextEdit.connect("textChanged()", self.updateRunButton)

    def _inputs(self) -> dict:
        return {"tiles": self.ui.tilesFolderLineEdit.text.strip(), "ultrasound": self.ui.ultrasoundSelector.currentNode(),
                "report": self.ui.reportTextEdit.toPlainText().strip(), "clinical": self.ui.clinicalLineEdit.text.strip()}

    def readiness(self) -> tuple:
        if not any(self._inputs().values()):
            return False, _("Give at least one of: tiles folder, ultrasound, report text, clinical values")
        return True, _("Predict the recurrence risk (missing modalities are compensated)")

    def prepareJob(self):
        core = self.logic.core  # installs the dependencies (with consent) before the Lib imports the core
        from BreastResponseAILib.recurrence import RecurrenceLogic, clinical_from_form

        inputs = self._inputs()
        try:
            extra = json.loads(inputs["clinical"]) if inputs["clinical"] else {}
        except json.JSONDecodeError as exc:
            raise ValueError(_("Clinical values are not valid JSON: {error}").format(error=exc)) from exc
        clinical = clinical_from_form(self.moduleWidget.clinicalValues(), extra)
        name = inputs["ultrasound"].GetName() if inputs["ultrasound"] is not None else "recurrence"
        return RecurrenceLogic(core.scene).prepare_job(name, clinical, inputs["tiles"] or None, inputs["ultrasound"],
                                                       inputs["report"])

    def importResults(self, job, previous):
        core = self.logic.core
        from BreastResponseAILib.recurrence import RecurrenceLogic

        return RecurrenceLogic(core.scene).import_results(job, previous)

    def showResults(self, results) -> None:
        """The survival chart and the results table in the plot + table layout."""
        slicer.app.layoutManager().setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpPlotTableView)
        selection = slicer.app.applicationLogic().GetSelectionNode()
        selection.SetActivePlotChartID(results.chart.GetID())
        selection.SetActiveTableID(results.table.GetID())
        slicer.app.applicationLogic().PropagatePlotChartSelection()
        slicer.app.applicationLogic().PropagateTableSelection()
        record = results.record
        self.ui.statusLabel.text = _("{group} risk; 5-year RFS {rfs:.2f}").format(
            group=record["risk_group"], rfs=record["rfs_probability"].get("5y", float("nan")))
