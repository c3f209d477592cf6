"""BreastResponseAI: breast DCE-MRI + clinical variables → tumour segment, pCR probability, attention.

This file is the thin Slicer skin. It imports nothing from the ResponseAI core at load time,
so Slicer starts even before the core's dependencies are installed; the work is done by
``BreastResponseAILib.logic.BreastLogic`` (MRML + core, tested headless in CI).
"""

import logging

import slicer
import vtk
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


class BreastResponseAIWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Binds the .ui to the parameter node and forwards button presses to the Logic."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/BreastResponseAI.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = BreastResponseAILogic()
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.loadDemoButton.connect("clicked(bool)", self.onLoadDemo)
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

    def onLoadDemo(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Could not load the demo case."), waitCursor=True):
            nodes = self.logic.loadDemoCase()
            self._parameterNode.prePhase = nodes.phases["pre"]
            self._parameterNode.post1Phase = nodes.phases["post1"]
            self._parameterNode.post2Phase = nodes.phases.get("post2")
            self._parameterNode.tumourSegmentation = nodes.segmentation
            slicer.util.setSliceViewerLayers(background=nodes.phases["post1"], fit=True)


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

    def loadDemoCase(self):
        """Generate the embedded demo case and load it as volume + segmentation nodes."""
        from responseai.demo import demo_case

        case = demo_case()
        return self.core.load_case(case.patient_id, case.phases, case.mask)


def ensureDependencies() -> None:
    """Install missing third-party packages into Slicer's Python, only with the user's consent."""
    from responseai.slicer_bridge.dependencies import ensure_installed

    installed = ensure_installed(slicer.util.confirmOkCancelDisplay, slicer.util.pip_install, "BreastResponseAI")
    if installed:
        logging.info("installed %s", ", ".join(installed))


class BreastResponseAITest(ScriptedLoadableModuleTest):
    """In-app test: the demo case loads into the scene with its geometry."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_LoadDemoCase()

    def test_LoadDemoCase(self):
        logic = BreastResponseAILogic()
        nodes = logic.loadDemoCase()
        self.assertIsNotNone(nodes.segmentation)
        back = logic.core.read_phases(nodes.phases)
        self.assertEqual(back["post1"].array.shape, slicer.util.arrayFromVolume(nodes.phases["post1"]).shape)
        matrix = vtk.vtkMatrix4x4()
        nodes.phases["post1"].GetIJKToRASMatrix(matrix)
        self.assertAlmostEqual(matrix.GetElement(0, 0), -back["post1"].spacing[0], places=6)
