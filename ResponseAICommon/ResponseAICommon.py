"""ResponseAICommon: the Slicer-side library both ResponseAI modules share (hidden module).

Slicer loads it like any scripted module, which puts ``ResponseAICommonLib`` on the import path
once for the whole extension; it has no panel of its own. The library holds what both widgets
need and what only exists inside the Slicer application (Qt, the parameter-node GUI wiring,
QProcess): the background job runner, the dependency install, the shared widget behaviour,
slice-view capture. Everything testable without Qt lives in ``responseai.slicer_bridge``.
"""

from slicer.i18n import tr as _
from slicer.ScriptedLoadableModule import ScriptedLoadableModule


class ResponseAICommon(ScriptedLoadableModule):
    """Hidden module: a home for ResponseAICommonLib, shared by BreastResponseAI and GradeGuidedFusion."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("ResponseAICommon")
        self.parent.categories = ["Oncology"]
        self.parent.dependencies = []
        self.parent.contributors = ["ResponseAI developers"]
        self.parent.helpText = _("Shared library of the ResponseAI modules (no user interface).")
        self.parent.acknowledgementText = ""
        self.parent.hidden = True
