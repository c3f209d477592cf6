"""BreastResponseAI: breast DCE-MRI + clinical variables → tumour segment, pCR probability, attention.

This file is the thin Slicer skin. It imports nothing from the ResponseAI core at load time,
so Slicer starts even before the core's dependencies are installed; the work is done by
``BreastResponseAILib.logic`` (MRML + core, tested headless in CI) and, for the models, by a
background ``responseai predict`` process so the GUI never freezes and Cancel works.
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

# Clinical fields: names are the core schema's (responseai.clinical.BREAST_SCHEMA); a test checks
# that the choices below match it. "unknown"/empty is an explicit state, not a default value.
CLINICAL_FIELDS = (
    "age", "menopausal_status", "er", "pr", "her2", "ki67", "molecular_subtype",
    "histological_type", "histological_grade", "ct_stage", "cn_stage", "tumour_size_mm",
)


class BreastResponseAI(ScriptedLoadableModule):
    """Module metadata, shown in Slicer's module list and Help panel."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("BreastResponseAI")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Oncology")]
        self.parent.dependencies = []
        self.parent.contributors = ["ResponseAI developers"]
        self.parent.helpText = _(
            "Predicts pathological complete response (pCR) to neoadjuvant therapy from breast "
            "DCE-MRI (pre, post-contrast phases) and clinical variables, with a tumour-guided "
            "attention map. Research use only: not a medical device."
        )
        self.parent.acknowledgementText = _(
            "Implements the stepwise clinically-guided attention approach for pCR prediction; "
            "built on MONAI, SimpleITK and 3D Slicer."
        )


@parameterNodeWrapper
class BreastResponseAIParameterNode:
    """Everything the user chose; saved with the scene so a reopened scene restores the form."""

    prePhase: vtkMRMLScalarVolumeNode
    post1Phase: vtkMRMLScalarVolumeNode
    post2Phase: vtkMRMLScalarVolumeNode
    tumourSegmentation: vtkMRMLSegmentationNode
    age: str = ""  # years, 18–100; empty = unknown
    menopausal_status: Annotated[str, Choice(["unknown", "pre", "post"])] = "unknown"
    er: Annotated[str, Choice(["unknown", "negative", "positive"])] = "unknown"
    pr: Annotated[str, Choice(["unknown", "negative", "positive"])] = "unknown"
    her2: Annotated[str, Choice(["unknown", "negative", "positive"])] = "unknown"
    ki67: str = ""  # %, 0–100; empty = unknown
    molecular_subtype: Annotated[str, Choice(["unknown", "luminal_a", "luminal_b", "her2_enriched", "triple_negative"])] = "unknown"
    histological_type: Annotated[str, Choice(["unknown", "ductal", "lobular", "other"])] = "unknown"
    histological_grade: Annotated[str, Choice(["unknown", "1", "2", "3"])] = "unknown"
    ct_stage: Annotated[str, Choice(["unknown", "T1", "T2", "T3", "T4"])] = "unknown"
    cn_stage: Annotated[str, Choice(["unknown", "N0", "N1", "N2", "N3"])] = "unknown"
    tumour_size_mm: str = ""  # mm, 1–200; empty = unknown
    heatmapOpacity: Annotated[float, WithinRange(0.0, 1.0)] = 0.4
    showGradcam: bool = False


class BreastResponseAIWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
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
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/BreastResponseAI.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        # the clinical widgets, found by the parameter they are bound to (no name mangling)
        self._fieldWidgets = {
            w.property("SlicerParameterName"): w
            for w in uiWidget.findChildren(qt.QWidget)
            if w.property("SlicerParameterName") in CLINICAL_FIELDS
        }
        self._fieldTips = {name: widget.toolTip for name, widget in self._fieldWidgets.items()}
        self.logic = BreastResponseAILogic()
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.loadDemoButton.connect("clicked(bool)", self.onLoadDemo)
        self.ui.applyButton.connect("clicked(bool)", self.onApply)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancel)
        self.ui.exportButton.connect("clicked(bool)", self.onExport)
        self.ui.opacitySlider.connect("valueChanged(double)", self.onOpacityChanged)
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

    def _clinicalValues(self) -> dict:
        return {name: getattr(self._parameterNode, name) for name in CLINICAL_FIELDS}

    def _checkCanApply(self, caller=None, event=None) -> None:
        """Show invalid clinical entries next to their field and enable Apply only when runnable."""
        errors = self.logic.clinicalErrors(self._clinicalValues())
        for name, widget in self._fieldWidgets.items():
            widget.setStyleSheet("background: #f9d6d5;" if name in errors else "")
            widget.toolTip = errors.get(name, self._fieldTips[name])
        self.ui.clinicalErrorsLabel.text = "\n".join(errors.values())
        p = self._parameterNode
        ready = p.prePhase is not None and p.post1Phase is not None and not errors and self._process is None
        self.ui.applyButton.enabled = ready
        self.ui.applyButton.toolTip = _("Predict pCR") if ready else _("Select pre and post1 phases and fix the clinical entries in red")

    def onLoadDemo(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Could not load the demo case."), waitCursor=True):
            nodes, clinical = self.logic.loadDemoCase()
            with slicer.util.NodeModify(self._parameterNode.parameterNode):
                self._parameterNode.prePhase = nodes.phases["pre"]
                self._parameterNode.post1Phase = nodes.phases["post1"]
                self._parameterNode.post2Phase = nodes.phases.get("post2")
                self._parameterNode.tumourSegmentation = None  # let the model segment it
                for name in CLINICAL_FIELDS:
                    value = clinical.get(name)
                    setattr(self._parameterNode, name, "" if value is None and name in ("age", "ki67", "tumour_size_mm")
                            else "unknown" if value is None else str(value))
            slicer.util.setSliceViewerLayers(background=nodes.phases["post1"], fit=True)

    def onApply(self) -> None:
        """Validate and write the inputs, then run the models in a background process."""
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Cannot start the prediction."), waitCursor=True):
            phases = {"pre": p.prePhase, "post1": p.post1Phase, "post2": p.post2Phase}
            self._job = self.logic.core_jobs.prepare(p.post1Phase.GetName(), phases, self._clinicalValues(),
                                                     p.tumourSegmentation)
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
                self._results = self.logic.importResults(self._job, self._results, self._parameterNode)
                self.ui.progressBar.value = 100
                self.ui.statusLabel.text = self.logic.summaryText(self._results)
                self.ui.exportButton.enabled = True
                slicer.util.setSliceViewerLayers(background=self._parameterNode.post1Phase,
                                                 foreground=self._results.heatmap,
                                                 foregroundOpacity=self._parameterNode.heatmapOpacity)
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
        folder = qt.QFileDialog.getExistingDirectory(slicer.util.mainWindow(), _("Export report to folder"))
        if not folder:
            return
        with slicer.util.tryWithErrorDisplay(_("Could not export the report."), waitCursor=True):
            files = self.logic.exportReport(self._results, folder, self._parameterNode.post1Phase)
            slicer.util.infoDisplay(_("Report written:\n") + "\n".join(str(f) for f in files.values()))


class BreastResponseAILogic(ScriptedLoadableModuleLogic):
    """Owns the parameter node; delegates the work to the core-backed BreastLogic."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self._core = None

    def getParameterNode(self):
        return BreastResponseAIParameterNode(super().getParameterNode())

    @property
    def core(self):
        """The MRML + core logic, created on first use (after dependencies are present)."""
        if self._core is None:
            ensureDependencies()
            from BreastResponseAILib.logic import BreastLogic

            self._core = BreastLogic(slicer.mrmlScene)
        return self._core

    @property
    def core_jobs(self):
        from BreastResponseAILib.logic import BreastJobs

        return BreastJobs(self.core)

    @staticmethod
    def clinicalErrors(values: dict) -> dict:
        """Per-field messages; the validation rules are the core's (stdlib-only module)."""
        from responseai.clinical import field_errors

        return field_errors(values)

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
        return _("pCR probability {probability:.2f} ({label})").format(
            probability=results.record["pcr_probability"], label=results.record["predicted_class"])

    @staticmethod
    def showTable(tableNode) -> None:
        slicer.app.layoutManager().setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpTableView)
        slicer.app.applicationLogic().GetSelectionNode().SetActiveTableID(tableNode.GetID())
        slicer.app.applicationLogic().PropagateTableSelection()

    def exportReport(self, results, folder: str, post1Node) -> dict:
        """Snapshots from Slicer's own slice views through the tumour, then the core's report."""
        import tempfile
        from pathlib import Path

        from BreastResponseAILib.logic import export_report
        from responseai.reports.export import tumour_centre_ras

        mask = self.core.read_mask(results.segmentation, results.reference)
        work = Path(tempfile.mkdtemp(prefix="responseai-report-"))
        try:
            snapshots = captureSliceViews(tumour_centre_ras(mask), work)
            return export_report(results, folder, snapshots, dicomSourceFolder(post1Node, work))
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def importResults(self, job, previous, parameterNode):
        """The finished job's outputs as nodes on the post1 grid (reusing the previous run's)."""
        from BreastResponseAILib.logic import import_results

        return import_results(slicer.mrmlScene, job, parameterNode.post1Phase, previous,
                              with_gradcam=parameterNode.showGradcam)

    def loadDemoCase(self):
        """Generate the embedded demo case; load its phases (the model will segment it)."""
        from responseai.demo import demo_case

        case = demo_case()
        return self.core.load_case(case.patient_id, case.phases), case.clinical


def captureSliceViews(centreRas, folder) -> dict:
    """Axial/sagittal/coronal PNGs of the Red/Yellow/Green views cut through ``centreRas``."""
    layoutManager = slicer.app.layoutManager()
    paths = {}
    for key, viewName in (("axial", "Red"), ("sagittal", "Yellow"), ("coronal", "Green")):
        sliceWidget = layoutManager.sliceWidget(viewName)
        sliceWidget.sliceLogic().GetSliceNode().JumpSliceByOffsetting(*centreRas)
        slicer.app.processEvents()
        sliceWidget.sliceView().forceRender()
        path = folder / f"{key}.png"
        sliceWidget.sliceView().grab().save(str(path))
        paths[key] = path
    return paths


def dicomSourceFolder(volumeNode, work):
    """The volume's DICOM files (from Slicer's database) linked into one folder, or None."""
    uids = (volumeNode.GetAttribute("DICOM.instanceUIDs") or "").split()
    if not uids or slicer.dicomDatabase is None:
        return None
    folder = work / "dicom"
    folder.mkdir()
    for index, uid in enumerate(uids):
        source = slicer.dicomDatabase.fileForInstance(uid)
        if source:
            shutil.copy(source, folder / f"{index:05d}.dcm")
    return folder


def ensureDependencies() -> None:
    """Install missing third-party packages into Slicer's Python, only with the user's consent."""
    from responseai.slicer_bridge.dependencies import ensure_installed

    installed = ensure_installed(slicer.util.confirmOkCancelDisplay, slicer.util.pip_install, "BreastResponseAI")
    if installed:
        logging.info("installed %s", ", ".join(installed))


class BreastResponseAITest(ScriptedLoadableModuleTest):
    """In-app test: the demo case loads, runs in a background job and its results come back."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_DemoCaseEndToEnd()

    def test_DemoCaseEndToEnd(self):
        import subprocess

        logic = BreastResponseAILogic()
        nodes, clinical = logic.loadDemoCase()
        from BreastResponseAILib.logic import import_results

        job = logic.core_jobs.prepare("demo", nodes.phases, clinical)
        subprocess.run(job.command, env=job.env, check=True)
        results = import_results(slicer.mrmlScene, job, nodes.phases["post1"])
        self.assertTrue(0.0 <= results.record["pcr_probability"] <= 1.0)
        self.assertIsNotNone(results.heatmap.GetDisplayNode().GetColorNode())
