"""GradeGuidedFusion: CT / MRI / PET + clinical phenotype → grade, response probability, subtype.

The thin Slicer skin: it imports nothing from the ResponseAI core at load time (Slicer must start
before torch / MONAI are installed); the work is done by ``GradeGuidedFusionLib.logic``
(MRML + core, tested headless in CI) and the network runs in a background process
(``python -m responseai.inference.gradeguided``) so the GUI never freezes and Cancel works.
"""

import logging
import shutil
from typing import Annotated

import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

# Channel parameter → the core's modality name (responseai.synthetic.gradeguided.MODALITIES).
VOLUME_FIELDS = {"ctNcVolume": "ct_nc", "ctArtVolume": "ct_art", "ctPvVolume": "ct_pv",
                 "mrT1Volume": "mr_t1", "mrT2Volume": "mr_t2", "petVolume": "pet"}
# Clinical fields: names are the core schema's (responseai.gradeguided_preprocess.CLINICAL_SCHEMA);
# "unknown"/empty is an explicit state, never a default value.
CLINICAL_FIELDS = ("age", "pdl1", "egfr", "afp", "stage", "treatment")


class GradeGuidedFusion(ScriptedLoadableModule):
    """Module metadata, shown in Slicer's module list and Help panel."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("GradeGuidedFusion")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Oncology")]
        self.parent.dependencies = ["BreastResponseAI"]  # shares its job runner and view capture
        self.parent.contributors = ["ResponseAI developers"]
        self.parent.helpText = _(
            "Non-invasive tumour grade, treatment-response probability and response subtype from "
            "CT, MRI and PET with clinical phenotype; the grade is injected as a prior into a gated "
            "multimodal fusion. Any modality may be missing. Research use only."
        )
        self.parent.acknowledgementText = _("Implements grade-guided multimodal fusion; built on MONAI and 3D Slicer.")


@parameterNodeWrapper
class GradeGuidedFusionParameterNode:
    """The user's selection and clinical form, saved with the scene so a reopened scene restores it."""

    ctNcVolume: vtkMRMLScalarVolumeNode
    ctArtVolume: vtkMRMLScalarVolumeNode
    ctPvVolume: vtkMRMLScalarVolumeNode
    mrT1Volume: vtkMRMLScalarVolumeNode
    mrT2Volume: vtkMRMLScalarVolumeNode
    petVolume: vtkMRMLScalarVolumeNode
    tumourSegmentation: vtkMRMLSegmentationNode
    age: str = ""  # years, 18–100; empty = unknown
    pdl1: str = ""  # %, 0–100; empty = unknown
    egfr: Annotated[str, Choice(["unknown", "mutant", "wild-type"])] = "unknown"
    afp: str = ""  # ng/mL, 0–100000; empty = unknown
    stage: Annotated[str, Choice(["unknown", "I", "II", "III", "IV"])] = "unknown"
    treatment: Annotated[str, Choice(["unknown", "chemo", "immunotherapy", "targeted"])] = "unknown"
    biopsyGrade: Annotated[str, Choice(["unknown", "G1", "G2", "G3"])] = "unknown"
    mapOpacity: Annotated[float, WithinRange(0.0, 1.0)] = 0.4


class GradeGuidedFusionWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Binds the .ui to the parameter node; runs the prediction job in a QProcess."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._process = None
        self._job = None
        self._results = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/GradeGuidedFusion.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self._fieldWidgets = {
            w.property("SlicerParameterName"): w
            for w in uiWidget.findChildren(qt.QWidget)
            if w.property("SlicerParameterName") in CLINICAL_FIELDS
        }
        self.logic = GradeGuidedFusionLogic()
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.applyButton.connect("clicked(bool)", self.onApply)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancel)
        self.ui.opacitySlider.connect("valueChanged(double)", self.onOpacityChanged)
        self.ui.exportButton.connect("clicked(bool)", self.onExport)
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.onCancel()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
            self._checkCanApply()

    def _volumeNodes(self) -> dict:
        return {modality: getattr(self._parameterNode, field) for field, modality in VOLUME_FIELDS.items()}

    def _clinicalValues(self) -> dict:
        return {name: getattr(self._parameterNode, name) for name in CLINICAL_FIELDS}

    def _checkCanApply(self, caller=None, event=None) -> None:
        """Say which channels are missing, mark invalid clinical entries, enable Apply only when runnable."""
        nodes = self._volumeNodes()
        self.ui.modalityStatusLabel.text = self.logic.modalityStatus(nodes)
        errors = self.logic.clinicalErrors(self._clinicalValues())
        for name, widget in self._fieldWidgets.items():
            widget.setStyleSheet("background: #f9d6d5;" if name in errors else "")
        self.ui.clinicalErrorsLabel.text = "\n".join(errors.values())
        p = self._parameterNode
        hasImage = any(node is not None for node in nodes.values())
        ready = hasImage and p.tumourSegmentation is not None and not errors and self._process is None
        self.ui.applyButton.enabled = ready
        self.ui.applyButton.toolTip = _("Predict grade, response and subtype") if ready else _(
            "Select at least one volume and the tumour segmentation, and fix the clinical entries in red")

    def onApply(self) -> None:
        """Validate and write the inputs, then run the model in a background process."""
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Cannot start the prediction."), waitCursor=True):
            nodes = self._volumeNodes()
            reference = next(node for node in nodes.values() if node is not None)
            self._job = self.logic.core.prepare_job(reference.GetName(), nodes, p.tumourSegmentation,
                                                    self._clinicalValues(), p.biopsyGrade)
            self._startProcess(self._job)

    def _startProcess(self, job) -> None:
        from BreastResponseAILib.processjob import ProcessJob

        self._process = ProcessJob(job, self.logic.parseProgress, self._onProgress, self._onFinished)
        self._cancelled = False
        self.ui.progressBar.value = 0
        self.ui.statusLabel.text = _("Starting…")
        self.ui.cancelButton.enabled = True
        self._checkCanApply()
        self._process.start()

    def _onProgress(self, percent: int, message: str) -> None:
        self.ui.progressBar.value = percent
        self.ui.statusLabel.text = message

    def _onFinished(self, succeeded: bool, log: list) -> None:
        self._process = None
        self.ui.cancelButton.enabled = False
        if self._cancelled:
            self.ui.statusLabel.text = _("Cancelled")
        elif not succeeded:
            self.ui.statusLabel.text = _("Failed")
            slicer.util.errorDisplay(self.logic.errorFromLog(log), detailedText="\n".join(log))
        else:
            with slicer.util.tryWithErrorDisplay(_("Could not load the results."), waitCursor=True):
                self._results = self.logic.core.import_results(self._job, self._results)
                self.ui.progressBar.value = 100
                self.ui.statusLabel.text = self.logic.summaryText(self._results)
                self.ui.exportButton.enabled = True
                background = self.logic.core.reference_name(self._volumeNodes())
                slicer.util.setSliceViewerLayers(background=self._volumeNodes()[background],
                                                 foreground=self._results.spatial_map,
                                                 foregroundOpacity=self._parameterNode.mapOpacity)
                self.logic.showTable(self._results.table)
        shutil.rmtree(self._job.folder, ignore_errors=True)
        self._checkCanApply()

    def onCancel(self) -> None:
        """Kill the background job; nothing was added to the scene yet."""
        if self._process is not None:
            self._cancelled = True
            self._process.cancel()

    def onOpacityChanged(self, value: float) -> None:
        if self._results is not None:
            slicer.util.setSliceViewerLayers(foregroundOpacity=value)

    def onExport(self) -> None:
        """PDF + JSON report of the last result, with the slice views as they are now."""
        folder = qt.QFileDialog.getExistingDirectory(slicer.util.mainWindow(), _("Export report to folder"))
        if not folder:
            return
        with slicer.util.tryWithErrorDisplay(_("Could not export the report."), waitCursor=True):
            nodes = self._volumeNodes()
            reference = nodes[self.logic.core.reference_name(nodes)]
            files = self.logic.exportReport(self._results, folder, self._parameterNode.tumourSegmentation, reference)
            slicer.util.infoDisplay(_("Report written:\n") + "\n".join(str(f) for f in files.values()))


class GradeGuidedFusionLogic(ScriptedLoadableModuleLogic):
    """Owns the parameter node; delegates the work to the core-backed GradeGuidedLogic."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self._core = None

    def getParameterNode(self):
        return GradeGuidedFusionParameterNode(super().getParameterNode())

    @property
    def core(self):
        """The MRML + core logic, created on first use (after dependencies are present)."""
        if self._core is None:
            from responseai.slicer_bridge.dependencies import ensure_installed

            installed = ensure_installed(slicer.util.confirmOkCancelDisplay, slicer.util.pip_install, "GradeGuidedFusion")
            if installed:
                logging.info("installed %s", ", ".join(installed))
            from GradeGuidedFusionLib.logic import GradeGuidedLogic

            self._core = GradeGuidedLogic(slicer.mrmlScene)
        return self._core

    @staticmethod
    def modalityStatus(nodes: dict) -> str:
        """Which channels are given / missing, without importing the core (Slicer may lack torch yet)."""
        labels = {"ct_nc": _("CT non-contrast"), "ct_art": _("CT arterial"), "ct_pv": _("CT portal-venous"),
                  "mr_t1": _("MRI T1"), "mr_t2": _("MRI T2"), "pet": _("PET")}
        given = [labels[m] for m, node in nodes.items() if node is not None]
        missing = [labels[m] for m, node in nodes.items() if node is None]
        if not given:
            return _("No imaging volume selected: choose at least one of CT, MRI or PET.")
        if not missing:
            return _("All six channels given.")
        return _("Given: {given}. Missing (zero channel, less reliable): {missing}.").format(
            given=", ".join(given), missing=", ".join(missing))

    @staticmethod
    def clinicalErrors(values: dict) -> dict:
        """Per-field messages; the rules are the core's grade-guided clinical schema."""
        from responseai.clinical import field_errors
        from responseai.gradeguided_preprocess import CLINICAL_SCHEMA

        return field_errors(values, CLINICAL_SCHEMA)

    @staticmethod
    def parseProgress(line: str):
        from responseai.pipeline import parse_progress

        return parse_progress(line)

    @staticmethod
    def errorFromLog(lines: list) -> str:
        from responseai.slicer_bridge.jobs import error_from_log

        return error_from_log(lines)

    @staticmethod
    def summaryText(results) -> str:
        r = results.record
        return _("Grade {grade} ({source}); response probability {probability:.2f} ({label}); subtype {subtype}").format(
            grade=r["grade_used"], source=r["grade_source"], probability=r["response_probability"],
            label=r["response_class"], subtype=r["subtype"])

    @staticmethod
    def showTable(tableNode) -> None:
        slicer.app.layoutManager().setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpTableView)
        slicer.app.applicationLogic().GetSelectionNode().SetActiveTableID(tableNode.GetID())
        slicer.app.applicationLogic().PropagateTableSelection()

    def exportReport(self, results, folder: str, segmentationNode, referenceNode) -> dict:
        """Snapshots of Slicer's own slice views through the tumour, then the core's report."""
        import tempfile
        from pathlib import Path

        # Same extension: one slice-view grabber for both modules (BreastResponseAI's).
        from BreastResponseAI import captureSliceViews
        from GradeGuidedFusionLib.logic import export_report
        from responseai.reports.export import tumour_centre_ras

        mask = self.core.read_mask(segmentationNode, referenceNode)
        work = Path(tempfile.mkdtemp(prefix="responseai-report-"))
        try:
            return export_report(results, folder, captureSliceViews(tumour_centre_ras(mask), work))
        finally:
            shutil.rmtree(work, ignore_errors=True)


class GradeGuidedFusionTest(ScriptedLoadableModuleTest):
    """In-app test: modalities on different grids come back on the reference grid."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_ReadModalities()

    def test_ReadModalities(self):
        import numpy as np

        ct = slicer.util.addVolumeFromArray(np.zeros((8, 10, 12), np.int16), name="CT")
        pet = slicer.util.addVolumeFromArray(np.ones((4, 5, 6), np.float32), ijkToRAS=np.diag([2.0, 2.0, 2.0, 1.0]), name="PET")
        images = GradeGuidedFusionLogic().core.read_modalities({"ct_nc": ct, "mr_t1": None, "pet": pet})
        self.assertEqual(images["pet"].array.shape, (8, 10, 12))
