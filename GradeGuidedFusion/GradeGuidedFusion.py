"""GradeGuidedFusion: CT / MRI / PET + clinical phenotype → grade, response probability, subtype.

The thin Slicer skin: it imports nothing from the ResponseAI core at load time; the work is done
by ``GradeGuidedFusionLib.logic.GradeGuidedLogic`` (MRML + core, tested headless in CI).
"""

import logging

import slicer
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin


class GradeGuidedFusion(ScriptedLoadableModule):
    """Module metadata, shown in Slicer's module list and Help panel."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("GradeGuidedFusion")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Oncology")]
        self.parent.dependencies = []
        self.parent.contributors = ["ResponseAI developers"]
        self.parent.helpText = _(
            "Non-invasive tumour grade, treatment-response probability and response subtype from "
            "CT, MRI and PET with clinical phenotype; the grade is injected as a prior into a gated "
            "multimodal fusion. Any modality may be missing. Research use only."
        )
        self.parent.acknowledgementText = _("Implements grade-guided multimodal fusion; built on MONAI and 3D Slicer.")


@parameterNodeWrapper
class GradeGuidedFusionParameterNode:
    """The user's selection, saved with the scene."""

    ctVolume: vtkMRMLScalarVolumeNode
    mriVolume: vtkMRMLScalarVolumeNode
    petVolume: vtkMRMLScalarVolumeNode
    tumourSegmentation: vtkMRMLSegmentationNode


class GradeGuidedFusionWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Binds the .ui to the parameter node."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/GradeGuidedFusion.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = GradeGuidedFusionLogic()
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None

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
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)


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
        images = GradeGuidedFusionLogic().core.read_modalities({"ct": ct, "mri": None, "pet": pet})
        self.assertEqual(images["pet"].array.shape, (8, 10, 12))
