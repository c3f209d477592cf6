"""BreastResponseAI: breast DCE-MRI + clinical variables → tumour segment, pCR probability, attention.

This file is the thin Slicer skin. It imports nothing from the ResponseAI core at load time,
so Slicer starts even before the core's dependencies are installed; the work is done by
``BreastResponseAILib.logic`` (MRML + core, tested headless in CI) and, for the models, by a
background ``responseai predict breast`` process so the GUI never freezes and Cancel works.
"""

import shutil
from typing import Annotated

import slicer
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode, vtkMRMLSequenceNode
from slicer.i18n import tr as _
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from ResponseAICommonLib.widget import (
    ResponseAILogicMixin, ResponseAIModule, ResponseAIWidgetMixin, skipWithoutDependencies, sliceSnapshots,
)

# Clinical fields: names are the core schema's (responseai.clinical.BREAST_SCHEMA); a test checks
# that the choices below match it. "unknown"/empty is an explicit state, not a default value.
CLINICAL_FIELDS = (
    "age", "menopausal_status", "er", "pr", "her2", "ki67", "molecular_subtype",
    "histological_type", "histological_grade", "ct_stage", "cn_stage", "tumour_size_mm",
    "tumour_size_2_mm", "tumour_size_3_mm", "laterality",
)
NUMERIC_FIELDS = ("age", "ki67", "tumour_size_mm", "tumour_size_2_mm", "tumour_size_3_mm")  # empty means unknown


class BreastResponseAI(ResponseAIModule):
    """Module metadata, shown in Slicer's module list and Help panel."""

    title = _("BreastResponseAI")
    helpText = _(
        "Predicts pathological complete response (pCR) to neoadjuvant therapy from breast "
        "DCE-MRI (pre, post-contrast phases) and clinical variables, with a tumour-guided "
        "attention map. Research use only: not a medical device."
    )
    acknowledgementText = _(
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
    dceSeries: vtkMRMLSequenceNode  # a dynamic series as Slicer loads it; "Use frames" fills the three phases from it
    dceFrames: str = ""  # "pre,post1[,post2]" frame numbers; empty: chosen by time (responseai.dynamic)
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
    tumour_size_2_mm: str = ""  # mm, ≤ tumour size; empty = unknown (checks the mask's extent, not a model input)
    tumour_size_3_mm: str = ""  # mm, ≤ tumour size; empty = unknown
    laterality: Annotated[str, Choice(["unknown", "left", "right"])] = "unknown"  # keeps the tumour search to that breast
    heatmapOpacity: Annotated[float, WithinRange(0.0, 1.0)] = 0.4
    showGradcam: bool = False


class BreastResponseAILogic(ResponseAILogicMixin, ScriptedLoadableModuleLogic):
    """Owns the parameter node; delegates the work to the core-backed BreastLogic."""

    moduleTitle = "BreastResponseAI"
    parameterNodeClass = BreastResponseAIParameterNode
    familyConstants = "responseai.breast.constants"
    coreLogic = "BreastResponseAILib.logic:BreastLogic"

    @property
    def coreJobs(self):
        core = self.core  # installs the dependencies (with consent) before the Lib imports the core
        from BreastResponseAILib.logic import BreastJobs

        return BreastJobs(core)

    def summaryText(self, results) -> str:
        self.core  # the models' code is installed by now (a result exists); touched before the Lib import
        from BreastResponseAILib.logic import summary_text

        return summary_text(results.record, _)

    def exportReport(self, results, folder: str, post1Node) -> dict:
        """Snapshots from Slicer's own slice views through the tumour, then the core's report."""
        mask = self.core.read_mask(results.segmentation, results.reference)
        from BreastResponseAILib.logic import export_report

        with sliceSnapshots(mask) as (snapshots, work):
            return export_report(results, folder, snapshots, dicomSourceFolder(post1Node, work))

    def useRunnerUp(self, results) -> None:
        """Make the runner-up candidate the tumour segment (see ``BreastLogic.use_runner_up``)."""
        self.core.use_runner_up(results.segmentation, results.reference)

    def importResults(self, job, previous, parameterNode):
        """The finished job's outputs as nodes on the post1 grid (reusing the previous run's)."""
        scene = self.core.scene
        from BreastResponseAILib.logic import import_results

        return import_results(scene, job, parameterNode.post1Phase, previous,
                              with_gradcam=parameterNode.showGradcam)

    def phasesFromSeries(self, sequenceNode, frames: str) -> tuple:
        """The series' chosen frames as volume nodes, and why those frames (see ``BreastLogic.phases_from_sequence``)."""
        return self.core.phases_from_sequence(sequenceNode, frames)

    def loadDemoCase(self):
        """Generate the embedded demo case; load its phases (the model will segment it)."""
        core = self.core  # the demo generator needs the core's dependencies: install them first
        from responseai.breast.demo import demo_case

        case = demo_case()
        return core.load_case(case.patient_id, case.phases), case.clinical


class BreastResponseAIWidget(ResponseAIWidgetMixin, ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The breast form: DCE phases, optional tumour segment, clinical variables; the job and its outputs."""

    uiFile = "UI/BreastResponseAI.ui"
    clinicalFields = CLINICAL_FIELDS

    logicClass = BreastResponseAILogic
    sections = (  # collapsible panels below the pCR form ("BreastResponseAISections.<file>:<Class>")
        "BreastResponseAISections.kinetics:KineticsSection",
        "BreastResponseAISections.recurrence:RecurrenceSection",
        "BreastResponseAISections.crossmodal:CrossModalSection",
    )

    def setupModule(self) -> None:
        self.ui.loadDemoButton.connect("clicked(bool)", self.onLoadDemo)
        self.ui.useRunnerUpButton.connect("clicked(bool)", self.onUseRunnerUp)
        self.ui.useSeriesButton.connect("clicked(bool)", self.onUseSeries)

    def readiness(self) -> tuple:
        p = self._parameterNode
        ready = p.prePhase is not None and p.post1Phase is not None
        return ready, _("Predict pCR") if ready else _("Select the pre-contrast and first post-contrast phases")

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
                    setattr(self._parameterNode, name, "" if value is None and name in NUMERIC_FIELDS
                            else "unknown" if value is None else str(value))
            slicer.util.setSliceViewerLayers(background=nodes.phases["post1"], fit=True)

    def onUseSeries(self) -> None:
        """The DCE series' frames become the form's three phases; the status line says which frames and why."""
        p = self._parameterNode
        if p.dceSeries is None:
            self.ui.statusLabel.text = _("Select a DCE series (a sequence) first.")
            return
        with slicer.util.tryWithErrorDisplay(_("Could not take the phases from the DCE series."), waitCursor=True):
            nodes, reason = self.logic.phasesFromSeries(p.dceSeries, p.dceFrames)
            with slicer.util.NodeModify(p.parameterNode):
                p.prePhase, p.post1Phase, p.post2Phase = nodes["pre"], nodes["post1"], nodes.get("post2")
            slicer.util.setSliceViewerLayers(background=nodes["post1"], fit=True)
            self.ui.statusLabel.text = reason

    def prepareJob(self):
        p = self._parameterNode
        phases = {"pre": p.prePhase, "post1": p.post1Phase, "post2": p.post2Phase}
        return self.logic.coreJobs.prepare(p.post1Phase.GetName(), phases, self.clinicalValues(), p.tumourSegmentation)

    def importResults(self, job, previous):
        return self.logic.importResults(job, previous, self._parameterNode)

    def showResults(self, results) -> None:
        """The attention map over post-contrast 1 (the Grad-CAM instead when the user asked for it)."""
        p = self._parameterNode
        overlay = results.gradcam if p.showGradcam and results.gradcam is not None else results.heatmap
        slicer.util.setSliceViewerLayers(background=p.post1Phase, foreground=overlay,
                                         foregroundOpacity=p.heatmapOpacity)
        self.logic.showTable(results.table)
        self.ui.useRunnerUpButton.enabled = results.automatic and "runner_up_candidate" in results.record

    def onUseRunnerUp(self) -> None:
        """The runner-up becomes the Tumour segment and the form's segmentation: the next prediction uses it."""
        with slicer.util.tryWithErrorDisplay(_("Could not use the runner-up candidate."), waitCursor=True):
            self.logic.useRunnerUp(self._results)
            self._parameterNode.tumourSegmentation = self._results.segmentation
            self.ui.useRunnerUpButton.enabled = False
            self.ui.statusLabel.text = _("The runner-up candidate is now the Tumour segment: predict again to use it.")

    def writeReport(self, folder: str) -> dict:
        return self.logic.exportReport(self._results, folder, self._parameterNode.post1Phase)


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


class BreastResponseAITest(ScriptedLoadableModuleTest):
    """In-app test: the demo case loads, runs in a background job and its results come back."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_DemoCaseEndToEnd()

    def test_DemoCaseEndToEnd(self):
        import subprocess

        skipWithoutDependencies(self)
        logic = BreastResponseAILogic()
        logic.core  # noqa: B018 - creates the core logic (the packages are there: no install)
        nodes, clinical = logic.loadDemoCase()
        from BreastResponseAILib.logic import import_results

        job = logic.coreJobs.prepare("demo", nodes.phases, clinical)
        subprocess.run(job.command, env=job.env, check=True)
        results = import_results(slicer.mrmlScene, job, nodes.phases["post1"])
        self.assertTrue(0.0 <= results.record["pcr_probability"] <= 1.0)
        self.assertIsNotNone(results.heatmap.GetDisplayNode().GetColorNode())
