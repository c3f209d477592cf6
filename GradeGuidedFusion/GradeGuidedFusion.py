"""GradeGuidedFusion: CT / MRI / PET + clinical phenotype → grade, response probability, subtype.

The thin Slicer skin: it imports nothing from the ResponseAI core at load time (Slicer must start
before torch / MONAI are installed); the work is done by ``GradeGuidedFusionLib.logic``
(MRML + core, tested headless in CI) and the network runs in a background process
(``responseai predict gradeguided``) so the GUI never freezes and Cancel works.
"""

from typing import Annotated

import slicer
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
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

# Channel parameter → the core's modality name (responseai.gradeguided.constants.MODALITIES).
VOLUME_FIELDS = {"ctNcVolume": "ct_nc", "ctArtVolume": "ct_art", "ctPvVolume": "ct_pv",
                 "mrT1Volume": "mr_t1", "mrT2Volume": "mr_t2", "petVolume": "pet"}
# Clinical fields: names are the core schema's (responseai.gradeguided.constants.CLINICAL_SCHEMA);
# "unknown"/empty is an explicit state, never a default value.
CLINICAL_FIELDS = ("age", "pdl1", "egfr", "afp", "stage", "treatment")


class GradeGuidedFusion(ResponseAIModule):
    """Module metadata, shown in Slicer's module list and Help panel."""

    title = _("GradeGuidedFusion")
    helpText = _(
        "Non-invasive tumour grade, treatment-response probability and response subtype from "
        "CT, MRI and PET with clinical phenotype; the grade is injected as a prior into a gated "
        "multimodal fusion. Any modality may be missing. Research use only."
    )
    acknowledgementText = _("Implements grade-guided multimodal fusion; built on MONAI and 3D Slicer.")


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


class GradeGuidedFusionLogic(ResponseAILogicMixin, ScriptedLoadableModuleLogic):
    """Owns the parameter node; delegates the work to the core-backed GradeGuidedLogic."""

    moduleTitle = "GradeGuidedFusion"
    parameterNodeClass = GradeGuidedFusionParameterNode
    familyConstants = "responseai.gradeguided.constants"
    coreLogic = "GradeGuidedFusionLib.logic:GradeGuidedLogic"

    @staticmethod
    def modalityStatus(nodes: dict) -> str:
        """Which channels are given / missing (stdlib only: no torch needed)."""
        from responseai.gradeguided.form import modality_status

        return modality_status(nodes)

    @staticmethod
    def summaryText(results) -> str:
        r = results.record
        return _("Grade {grade} ({source}); response probability {probability:.2f} ({label}); subtype {subtype}").format(
            grade=r["grade_used"], source=r["grade_source"], probability=r["response_probability"],
            label=r["response_class"], subtype=r["subtype"])

    def exportReport(self, results, folder: str, segmentationNode, referenceNode) -> dict:
        """Snapshots of Slicer's own slice views through the tumour, then the core's report."""
        mask = self.core.read_mask(segmentationNode, referenceNode)
        from GradeGuidedFusionLib.logic import export_report

        with sliceSnapshots(mask) as (snapshots, _work):
            return export_report(results, folder, snapshots)


class GradeGuidedFusionWidget(ResponseAIWidgetMixin, ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The grade-guided form: six channel selectors, tumour segment, clinical phenotype, biopsy grade."""

    uiFile = "UI/GradeGuidedFusion.ui"
    clinicalFields = CLINICAL_FIELDS

    logicClass = GradeGuidedFusionLogic

    def _volumeNodes(self) -> dict:
        return {modality: getattr(self._parameterNode, field) for field, modality in VOLUME_FIELDS.items()}

    def readiness(self) -> tuple:
        """Say which channels are missing; runnable with one volume and the tumour segmentation."""
        nodes = self._volumeNodes()
        self.ui.modalityStatusLabel.text = self.logic.modalityStatus(nodes)
        ready = any(node is not None for node in nodes.values()) and self._parameterNode.tumourSegmentation is not None
        return ready, _("Predict grade, response and subtype") if ready else _(
            "Select at least one volume and the tumour segmentation")

    def prepareJob(self):
        p = self._parameterNode
        nodes = self._volumeNodes()
        reference = next(node for node in nodes.values() if node is not None)
        return self.logic.core.prepare_job(reference.GetName(), nodes, p.tumourSegmentation, self.clinicalValues(),
                                           p.biopsyGrade)

    def importResults(self, job, previous):
        return self.logic.core.import_results(job, previous)

    def showResults(self, results) -> None:
        nodes = self._volumeNodes()
        slicer.util.setSliceViewerLayers(background=nodes[self.logic.core.reference_name(nodes)],
                                         foreground=results.spatial_map,
                                         foregroundOpacity=self._parameterNode.mapOpacity)
        self.logic.showTable(results.table)

    def writeReport(self, folder: str) -> dict:
        """PDF + JSON report of the last result, with the slice views through the tumour."""
        nodes = self._volumeNodes()
        reference = nodes[self.logic.core.reference_name(nodes)]
        return self.logic.exportReport(self._results, folder, self._parameterNode.tumourSegmentation, reference)


class GradeGuidedFusionTest(ScriptedLoadableModuleTest):
    """In-app test: modalities on different grids come back on the reference grid."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_ReadModalities()

    def test_ReadModalities(self):
        import numpy as np

        skipWithoutDependencies(self)
        ct = slicer.util.addVolumeFromArray(np.zeros((8, 10, 12), np.int16), name="CT")
        pet = slicer.util.addVolumeFromArray(np.ones((4, 5, 6), np.float32), ijkToRAS=np.diag([2.0, 2.0, 2.0, 1.0]), name="PET")
        images = GradeGuidedFusionLogic().core.read_modalities({"ct_nc": ct, "mr_t1": None, "pet": pet})
        self.assertEqual(images["pet"].array.shape, (8, 10, 12))
