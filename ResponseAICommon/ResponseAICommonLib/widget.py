"""What both ResponseAI module widgets and logics do the same way, written once.

``ResponseAIWidgetMixin`` binds a module's ``.ui`` to its parameter node, marks invalid clinical
entries, enables Apply only when the inputs are runnable, runs the prediction in a background
``ProcessJob`` with progress and Cancel, and imports the results. A module widget supplies its
own form logic through five hooks: :meth:`readiness`, :meth:`prepareJob`, :meth:`importResults`,
:meth:`showResults` and :meth:`writeReport`.

``ResponseAILogicMixin`` creates the module's MRML + core logic on first use, *after* the
consent-based dependency install, so the panel loads in a Slicer without torch.

Nothing here imports the core at module load; what it calls before the dependency check
(form validation, progress parsing, error messages) is stdlib + numpy.
"""

import importlib
import logging
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import ctk
import qt
import slicer
import vtk
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.ScriptedLoadableModule import ScriptedLoadableModule, ScriptedLoadableModuleWidget
from slicer.util import VTKObservationMixin

from ResponseAICommonLib.processjob import ProcessJob

INVALID_FIELD_STYLE = "background: #f9d6d5;"
SLICE_VIEWS = (("axial", "Red"), ("sagittal", "Yellow"), ("coronal", "Green"))


class BackgroundJobMixin:
    """One background prediction at a time for a form or a panel, written once.

    The owner has ``ui.progressBar``, ``ui.statusLabel`` and ``ui.cancelButton``, a ``logic``
    (``parseProgress``, ``errorFromLog``) and the hooks ``prepareJob``, ``importResults``,
    ``showResults``; it says what to refresh (:meth:`refreshControls`) and what the status line
    says after a success (:meth:`summaryText`). The job folder is removed whatever happens.
    """

    _job = None
    _process = None
    _results = None
    _cancelled = False

    def startJob(self, failureTitle: str) -> None:
        """Validate and write the inputs (``prepareJob``), then run the model in a background process."""
        with slicer.util.tryWithErrorDisplay(failureTitle, waitCursor=True):
            self._job = self.prepareJob()
            self._process = ProcessJob(self._job, self.logic.parseProgress, self._onProgress, self._onFinished)
            self._cancelled = False
            self.ui.progressBar.value = 0
            self.ui.statusLabel.text = _("Starting…")
            self.ui.cancelButton.enabled = True
            self.refreshControls()
            self._process.start()

    def _onProgress(self, percent: int, message: str) -> None:
        self.ui.progressBar.value = percent
        self.ui.statusLabel.text = message

    def _onFinished(self, succeeded: bool, log: list) -> None:
        """Import the results (or say why not); the job folder goes and the controls come back, always."""
        self._process = None
        self.ui.cancelButton.enabled = False
        try:
            if self._cancelled:
                self.ui.statusLabel.text = _("Cancelled")
            elif not succeeded:
                self.ui.statusLabel.text = _("Failed")
                slicer.util.errorDisplay(self.logic.errorFromLog(log), detailedText="\n".join(log))
            else:
                with slicer.util.tryWithErrorDisplay(_("Could not load the results."), waitCursor=True):
                    self._results = self.importResults(self._job, self._results)
                    self.ui.progressBar.value = 100
                    self.ui.statusLabel.text = self.summaryText(self._results)
                    self.afterImport(self._results)
                    self.showResults(self._results)
        finally:
            shutil.rmtree(self._job.folder, ignore_errors=True)
            self.refreshControls()

    def onCancel(self) -> None:
        """Kill the background job's process tree; nothing was added to the scene yet."""
        if self._process is not None:
            self._cancelled = True
            self._process.cancel()

    def refreshControls(self) -> None:
        """Enable / disable the owner's buttons after a job starts or ends."""
        raise NotImplementedError

    def summaryText(self, results) -> str:
        """The status line after a successful run."""
        return _("Done")

    def afterImport(self, results) -> None:
        """What else a successful import makes possible (nothing by default)."""

    # --- hooks every owner implements --------------------------------------------------------------
    def readiness(self) -> tuple:
        """(inputs selected, tooltip for the Run / Apply button)."""
        raise NotImplementedError

    def prepareJob(self):
        """Check the inputs and write them for the background job (raises with a user message)."""
        raise NotImplementedError

    def importResults(self, job, previous):
        """The finished job's outputs as MRML nodes (reusing ``previous``'s)."""
        raise NotImplementedError

    def showResults(self, results) -> None:
        """Put the results in the views."""
        raise NotImplementedError


class ResponseAIWidgetMixin(BackgroundJobMixin):
    """Shared widget behaviour; list it first: ``class W(ResponseAIWidgetMixin, ScriptedLoadableModuleWidget,
    VTKObservationMixin)``. A module sets ``uiFile``, ``clinicalFields`` and ``logicClass`` and implements
    the hooks; ``setupModule`` connects what only that module has."""

    uiFile = ""
    clinicalFields: tuple = ()
    logicClass = None
    sections: tuple = ()  # "ModuleSections.file:Class" of ResponseAISection panels shown below the form

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None

    def setup(self) -> None:
        """Load the .ui, find the clinical fields, connect the shared buttons, then the module's own."""
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath(self.uiFile))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        # the clinical widgets, found by the parameter they are bound to (no name mangling)
        self._fieldWidgets = {w.property("SlicerParameterName"): w for w in uiWidget.findChildren(qt.QWidget)
                              if w.property("SlicerParameterName") in self.clinicalFields}
        self._fieldTips = {name: widget.toolTip for name, widget in self._fieldWidgets.items()}
        self.logic = self.logicClass()
        self.logic.installProgress = self._onInstallProgress
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.applyButton.connect("clicked(bool)", self.onApply)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancel)
        self.ui.exportButton.connect("clicked(bool)", self.onExport)
        self.ui.opacitySlider.connect("valueChanged(double)", self.onOpacityChanged)
        self.ui.applyButton.enabled = False  # until the inputs are checked
        self.setupModule()
        self.sectionPanels = [_resolve(target)(self) for target in self.sections]
        for panel in self.sectionPanels:
            panel.setup()
        self.layout.addStretch(1)
        self.initializeParameterNode()

    # --- parameter node (Slicer's template, once) ------------------------------------------------
    def cleanup(self) -> None:
        self.onCancel()
        for panel in getattr(self, "sectionPanels", ()):
            panel.onCancel()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)

    def onSceneStartClose(self, caller, event) -> None:
        self.onCancel()  # a job must not import its results into the next scene
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        self._results = None
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
            self._labelCategories()
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
            self._checkCanApply()

    # --- form -----------------------------------------------------------------------------------
    def _labelCategories(self) -> None:
        """Show 'Luminal A', not 'luminal_a'. The wrapper's combo-box connector fills the items with the
        choice codes and maps them by index (Slicer's parameterNodeWrapper/guiConnectors.py), so the
        item texts can be relabelled without changing what is stored."""
        labels = self.logic.categoryLabels()
        for widget in self._fieldWidgets.values():
            if isinstance(widget, qt.QComboBox):
                for index in range(widget.count):
                    widget.setItemText(index, labels.get(widget.itemText(index), widget.itemText(index)))

    def clinicalValues(self) -> dict:
        return {name: getattr(self._parameterNode, name) for name in self.clinicalFields}

    def _checkCanApply(self, caller=None, event=None) -> None:
        """Mark invalid clinical entries next to their field; enable Apply only when runnable."""
        errors = self.logic.clinicalErrors(self.clinicalValues())
        for name, widget in self._fieldWidgets.items():
            widget.setStyleSheet(INVALID_FIELD_STYLE if name in errors else "")
            widget.toolTip = errors.get(name, self._fieldTips[name])
        self.ui.clinicalErrorsLabel.text = "\n".join(errors.values())
        ready, tip = self.readiness()
        ready = ready and not errors and self._process is None
        self.ui.applyButton.enabled = ready
        self.ui.applyButton.toolTip = _("Fix the clinical entries in red") if errors else tip

    # --- job ------------------------------------------------------------------------------------
    def onApply(self) -> None:
        """Validate and write the inputs, then run the model in a background process."""
        self.startJob(_("Cannot start the prediction."))

    def _onInstallProgress(self, done: int, total: int, requirement: str) -> None:
        """First-use install, package by package, in the panel (the GUI is busy meanwhile)."""
        self.ui.progressBar.value = int(100 * done / max(total, 1))
        self.ui.statusLabel.text = _("Installing {requirement} ({index} of {total})…").format(
            requirement=requirement, index=done + 1, total=total)
        slicer.app.processEvents()

    def refreshControls(self) -> None:
        self._checkCanApply()

    def summaryText(self, results) -> str:
        return self.logic.summaryText(results)

    def afterImport(self, results) -> None:
        self.ui.exportButton.enabled = True

    def onOpacityChanged(self, value: float) -> None:
        if self._results is not None:
            slicer.util.setSliceViewerLayers(foregroundOpacity=value)

    def onExport(self) -> None:
        folder = qt.QFileDialog.getExistingDirectory(slicer.util.mainWindow(), _("Export report to folder"))
        if not folder:
            return
        with slicer.util.tryWithErrorDisplay(_("Could not export the report."), waitCursor=True):
            files = self.writeReport(folder)
            slicer.util.infoDisplay(_("Report written:\n") + "\n".join(str(f) for f in files.values()))

    # --- hooks each module implements -------------------------------------------------------------
    def setupModule(self) -> None:
        """Connect the widgets only this module has (none by default)."""

    def writeReport(self, folder: str) -> dict:
        """Write the per-patient report of the shown results into ``folder``."""
        raise NotImplementedError


def _resolve(target: str):
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


class ResponseAISection(BackgroundJobMixin):
    """A collapsible panel of further analysis in a module (DCE kinetics, recurrence, cross-modal…).

    Each section has its own ``.ui`` (in the module's ``Resources/UI``) with ``runButton``,
    ``cancelButton``, ``progressBar`` and ``statusLabel``, and its own MRML + core logic in the
    module's Lib (tested headless). Like the module form, the model runs in a background
    ``ProcessJob`` (a ``responseai predict <family>`` command) so the GUI stays live and Cancel
    works. A section implements :meth:`setupSection`, :meth:`readiness`, :meth:`prepareJob`,
    :meth:`importResults` and :meth:`showResults`; the module widget lists it in ``sections``.
    """

    title = ""
    uiFile = ""

    def __init__(self, moduleWidget) -> None:
        self.moduleWidget = moduleWidget

    @property
    def logic(self):
        """The module's logic (its ``core`` installs dependencies on first use)."""
        return self.moduleWidget.logic

    def setup(self) -> None:
        panel = ctk.ctkCollapsibleButton()
        panel.text = self.title
        panel.collapsed = True
        self.moduleWidget.layout.addWidget(panel)
        uiWidget = slicer.util.loadUI(self.moduleWidget.resourcePath(self.uiFile))
        qt.QVBoxLayout(panel).addWidget(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        self.ui.runButton.connect("clicked(bool)", self.onRun)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancel)
        self.ui.cancelButton.enabled = False
        self.setupSection()
        self.updateRunButton()

    def updateRunButton(self, *unused) -> None:
        """Enable Run only when the section's inputs are selected and no job of it is running."""
        ready, tip = self.readiness()
        self.ui.runButton.enabled = ready and self._process is None
        self.ui.runButton.toolTip = tip

    def onRun(self) -> None:
        self.startJob(_("Cannot start {title}.").format(title=self.title))

    def refreshControls(self) -> None:
        self.updateRunButton()

    # --- hooks each section implements -------------------------------------------------------------
    def setupSection(self) -> None:
        """Connect the section's own widgets (call :meth:`updateRunButton` when an input changes)."""


class ResponseAILogicMixin:
    """Shared logic behaviour; list it first: ``class L(ResponseAILogicMixin, ScriptedLoadableModuleLogic)``.

    The module names its parameter node class and its MRML + core logic (``"Lib.module:Class"``);
    that logic is created on first use of :attr:`core`, after the consent-based install.
    """

    moduleTitle = "ResponseAI"
    parameterNodeClass = None
    coreLogic = ""  # "ModuleLib.logic:ClassName"
    # "responseai.<family>.constants": CLINICAL_SCHEMA, CATEGORY_LABELS, optional form_errors (stdlib only)
    familyConstants = ""
    installProgress = None  # the widget sets a callback (done, total, requirement) to show the install

    def __init__(self) -> None:
        super().__init__()
        self._core = None

    def getParameterNode(self):
        return self.parameterNodeClass(super().getParameterNode())

    def createCore(self, scene):
        """The module's MRML + core logic (imports the core: called after the dependency check)."""
        module, _, name = self.coreLogic.partition(":")
        return getattr(importlib.import_module(module), name)(scene)

    @property
    def core(self):
        if self._core is None:
            ensureDependencies(self.moduleTitle, self.installProgress)
            self._core = self.createCore(slicer.mrmlScene)
        return self._core

    def clinicalErrors(self, values: dict) -> dict:
        """Per-field messages; the rules are the family's schema (no torch / pandas needed)."""
        from responseai.clinical import field_errors

        constants = importlib.import_module(self.familyConstants)
        return field_errors(values, constants.CLINICAL_SCHEMA, getattr(constants, "form_errors", None))

    def categoryLabels(self) -> dict:
        return importlib.import_module(self.familyConstants).CATEGORY_LABELS

    @staticmethod
    def parseProgress(line: str):
        from responseai.progress import parse_progress

        return parse_progress(line)

    @staticmethod
    def errorFromLog(lines: list) -> str:
        from responseai.slicer_bridge.jobs import error_from_log

        return error_from_log(lines)

    @staticmethod
    def showTable(tableNode) -> None:
        slicer.app.layoutManager().setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpTableView)
        slicer.app.applicationLogic().GetSelectionNode().SetActiveTableID(tableNode.GetID())
        slicer.app.applicationLogic().PropagateTableSelection()



@contextmanager
def sliceSnapshots(mask):
    """Yield (snapshot paths, scratch folder): the three slice views captured through the tumour centre."""
    from responseai.reports.snapshots import tumour_centre_ras

    work = Path(tempfile.mkdtemp(prefix="responseai-report-"))
    try:
        yield captureSliceViews(tumour_centre_ras(mask), work), work
    finally:
        shutil.rmtree(work, ignore_errors=True)


class ResponseAIModule(ScriptedLoadableModule):
    """The metadata every ResponseAI module shows in Slicer's module list and Help panel.

    A module subclasses it with its own ``title``, ``helpText`` and ``acknowledgementText``.
    """

    title = helpText = acknowledgementText = ""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        parent.title = self.title
        parent.categories = [translate("qSlicerAbstractCoreModule", "Oncology")]
        parent.dependencies = ["ResponseAICommon"]
        parent.contributors = ["ResponseAI developers"]
        parent.helpText = self.helpText
        parent.acknowledgementText = self.acknowledgementText


def skipWithoutDependencies(testCase) -> None:
    """In-app tests never install packages: where the core's are missing (a build machine) they skip."""
    from responseai.slicer_bridge.dependencies import install_plan

    missing = install_plan()
    if missing:
        testCase.skipTest("ResponseAI's Python packages are not installed: " + ", ".join(missing))


def captureSliceViews(centreRas, folder) -> dict:
    """Axial/sagittal/coronal PNGs of the Red/Yellow/Green views cut through ``centreRas``.

    The views are put back where the user had them afterwards.
    """
    layoutManager = slicer.app.layoutManager()
    paths = {}
    for key, viewName in SLICE_VIEWS:
        sliceWidget = layoutManager.sliceWidget(viewName)
        sliceNode = sliceWidget.sliceLogic().GetSliceNode()
        offset = sliceNode.GetSliceOffset()
        try:
            sliceNode.JumpSliceByOffsetting(*centreRas)
            slicer.app.processEvents()
            sliceWidget.sliceView().forceRender()
            path = Path(folder) / f"{key}.png"
            sliceWidget.sliceView().grab().save(str(path))
            paths[key] = path
        finally:
            sliceNode.SetSliceOffset(offset)
    return paths


def ensureDependencies(who: str, progress=None) -> None:
    """Install missing third-party packages into Slicer's Python, only with the user's consent.

    An unsupported (older) Slicer is refused first; torch comes from the PyTorch extension when
    it is installed (it chooses the CPU or CUDA build), else the CPU build.
    """
    from responseai.slicer_bridge.dependencies import check_supported, ensure_installed

    check_supported((slicer.app.majorVersion, slicer.app.minorVersion))
    with tempfile.TemporaryDirectory() as work:
        installed = ensure_installed(slicer.util.confirmOkCancelDisplay, pipInstaller(Path(work)), who,
                                     install_torch=installTorch, progress=progress)
    if installed:
        logging.info("installed %s", ", ".join(installed))


def pipInstaller(work: Path):
    """``slicer.util.pip_install``; from Slicer 5.11 (``slicer.pydeps``) with Slicer's bundled versions as
    pip constraints, so that no dependency of ours can replace numpy, SimpleITK or pydicom."""
    if not hasattr(slicer, "pydeps"):
        return slicer.util.pip_install
    from responseai.slicer_bridge.dependencies import bundled_constraints

    constraints = work / "slicer-bundled-constraints.txt"
    constraints.write_text("\n".join(bundled_constraints()) + "\n", encoding="utf-8")
    return lambda requirement: slicer.util.pip_install(requirement, constraints=str(constraints))


def installTorch(requirement: str) -> None:
    """torch through the PyTorch extension when present, else the CPU build (Linux wheels on PyPI are CUDA, GBs)."""
    try:
        import PyTorchUtils
    except ImportError:
        PyTorchUtils = None
    if PyTorchUtils is not None:
        version = requirement.partition("torch")[2] or None
        if PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False, torchVersionRequirement=version) is None:
            raise RuntimeError("the PyTorch extension could not install torch")
        return
    cpuIndex = " --index-url https://download.pytorch.org/whl/cpu" if sys.platform.startswith("linux") else ""
    slicer.util.pip_install(requirement + cpuIndex)
