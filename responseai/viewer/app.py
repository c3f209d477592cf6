"""The trame page: case list, Slicer slice views, clinical form, Run, result, DCE kinetics, report,
and the recurrence risk / cross-modal diagnosis of a case folder that holds those families' inputs.

Slice views are trame-slicer's remote views (Slicer's ``vtkMRMLSliceLogic`` and displayable
managers rendering offscreen, streamed as images). Everything that computes runs elsewhere:
the case check is the family's ``preprocess``, form messages are
:func:`responseai.clinical.field_errors`, the prediction, the DCE kinetics (``responseai predict
kinetics`` with the prediction's tumour segment) and the report are the CLI commands the
Slicer module's jobs run (:mod:`responseai.viewer.jobs`), in a worker thread + subprocess so
the page keeps answering; their outputs are loaded onto the scene by
:class:`responseai.viewer.session.ViewerSession` on the event loop's thread (VTK is not
thread-safe).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from pathlib import Path

from responseai.errors import ResponseAIError
from responseai.slicer_bridge.outputs import HEATMAP_OPACITY
from responseai.viewer.cases import CaseEntry, family_piece, form_errors, form_fields, form_values
from responseai.viewer.jobs import (
    KINETICS_FAMILY, Job, crossmodal_available, crossmodal_command, crossmodal_summary, kinetics_available,
    kinetics_command, prediction_cautions, prediction_command, read_result, recurrence_available,
    recurrence_command, recurrence_summary, report_command, runner_up_offer,
)

log = logging.getLogger(__name__)

REPORTS_URL = "responseai_reports"
TITLE = "ResponseAI viewer — research use only, not a medical device"


def _key(name: str) -> str:
    """The page state key of a clinical variable's form field."""
    return f"clinical_{name}"


def _message(exc: BaseException) -> str:
    """One readable line for the page: the core's own message, never a traceback."""
    if isinstance(exc, ResponseAIError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"cannot read the case: {exc.strerror or exc} ({exc.filename})" if exc.filename else f"cannot read the case: {exc}"
    return f"unexpected problem ({type(exc).__name__}): {exc}"


def kinetic_legend() -> list[tuple[str, str]]:
    """(class name, CSS colour) of the assessed kinetic classes, from the kinetics family's constants."""
    names = family_piece("constants:CLASS_NAMES", KINETICS_FAMILY)
    colors = family_piece("constants:CLASS_COLORS", KINETICS_FAMILY)
    skip = family_piece("constants:NOT_ASSESSED", KINETICS_FAMILY)
    return [(name, "rgb({}, {}, {})".format(*(round(255 * c) for c in colors[value])))
            for value, name in names.items() if value != skip]


class ViewerApp:
    """One server, one Slicer scene, the given cases."""

    def __init__(self, cases: list[CaseEntry], work_dir: Path | None = None, server=None) -> None:
        from responseai.slicer_bridge.render import configure_offscreen_opengl

        configure_offscreen_opengl()  # before the first render window
        from trame.app import get_server
        from trame_slicer import module as trame_slicer_module
        from trame_slicer.core import LayoutManager
        from trame_slicer.rca_view import register_rca_factories

        from responseai.slicer_bridge.headless import headless_app
        from responseai.viewer.session import ViewerSession

        self.cases = cases
        self.work_dir = Path(work_dir or tempfile.mkdtemp(prefix="responseai-serve-"))
        self.reports_dir = self.work_dir / "reports"
        self.reports_dir.mkdir(parents=True, exist_ok=True)
        self.server = server or get_server("responseai-viewer", client_type="vue3")
        self.server.enable_module(trame_slicer_module)
        self.server.enable_module({"serve": {REPORTS_URL: str(self.reports_dir)}})
        self.state, self.ctrl = self.server.state, self.server.controller
        self.slicer = headless_app()
        register_rca_factories(self.slicer.view_manager, self.server,
                               slice_view_ui_f=lambda *_: None, three_d_view_ui_f=lambda *_: None)
        self.layout_manager = LayoutManager(self.slicer.scene, self.slicer.view_manager, self.server)
        self.layout_manager.register_layout("ResponseAI", self._layout())
        self.session = ViewerSession(self.slicer)
        self.fields = form_fields()
        self._job: Job | None = None
        self._runs = 0
        self._result = None
        self._init_state()
        self._build_ui()
        self.layout_manager.set_layout("ResponseAI")

    @staticmethod
    def _layout():
        from trame_slicer.views import Layout, LayoutDirection, ViewLayoutDefinition

        return Layout(LayoutDirection.Horizontal, [
            ViewLayoutDefinition.axial_view(),
            Layout(LayoutDirection.Vertical, [ViewLayoutDefinition.threed_view(), ViewLayoutDefinition.sagittal_view(),
                                              ViewLayoutDefinition.coronal_view()]),
        ], flex_sizes=["2", "1"])

    # -- state ------------------------------------------------------------------------------------
    def _init_state(self) -> None:
        s = self.state
        s.trame__title = "ResponseAI viewer"
        s.cases = [{"title": c.case_id, "value": i, "error": c.error} for i, c in enumerate(self.cases)]
        s.case_index = None
        s.case_loaded = False
        s.case_title = ""
        s.case_error = ""
        s.case_note = ""  # which frames of a dynamic series the case reads
        for f in self.fields:
            s[_key(f["name"])] = ""
            if "items" in f:
                s[f"items_{f['name']}"] = f["items"]
        s.errors = {}
        s.running = False
        s.progress = 0
        s.progress_message = ""
        s.run_error = ""
        s.pcr_text = ""
        s.pcr_raw = ""
        s.predicted_class = ""
        s.opacity = HEATMAP_OPACITY
        s.report_url = ""
        s.report_busy = False
        s.kinetics_possible = False  # the case has pre, post1 and post2
        s.kinetics_ftv = s.kinetics_worst = s.kinetics_majority = ""
        s.kinetics_visible = True
        s.recurrence_possible = s.crossmodal_possible = False  # the case folder holds their inputs
        self._clear_segment_choice()
        self._clear_family_outputs()
        s.node_count = self.session.node_count()
        s.change(*[_key(f["name"]) for f in self.fields])(self._on_clinical)
        s.change("opacity")(self._on_opacity)
        s.change("kinetics_visible")(self._on_kinetics_visible)
        self.ctrl.select_case = self.select_case
        self.ctrl.run = self.run
        self.ctrl.write_report = self.write_report
        self.ctrl.cancel = self.cancel
        self.ctrl.run_kinetics = self.run_kinetics
        self.ctrl.run_recurrence = self.run_recurrence
        self.ctrl.run_crossmodal = self.run_crossmodal
        self.ctrl.use_runner_up = self.use_runner_up
        self.ctrl.use_automatic = self.use_automatic

    def _clear_segment_choice(self) -> None:
        """Forget the runner-up offered and the segment chosen in the page (a new case starts automatic)."""
        self._mask: Path | None = None  # a tumour segment chosen in the page (the runner-up) for the case on screen
        self._runner_up: Path | None = None  # the last prediction's runner-up candidate, when it has one
        self.state.segment_source = self.state.runner_up_text = self.state.caution_text = ""
        self.state.runner_up_chosen = False

    def _clear_family_outputs(self) -> None:
        s = self.state
        s.recurrence_group = s.recurrence_score = s.recurrence_rfs = s.recurrence_missing = ""
        s.crossmodal_class = s.crossmodal_confidence = s.crossmodal_grade = s.crossmodal_conclusion = ""

    def clinical(self) -> dict[str, str]:
        """The form's values by variable name ('' = unknown)."""
        return {f["name"]: self.state[_key(f["name"])] or "" for f in self.fields}

    def _on_clinical(self, **_):
        self.state.errors = form_errors(self.clinical())

    def _on_opacity(self, opacity, **_):
        try:
            self.session.set_opacity(float(opacity))
        except (TypeError, ValueError):
            pass

    def _on_kinetics_visible(self, kinetics_visible, **_):
        if self.state.kinetics_worst and not self.state.running:
            self.session.show_kinetics(bool(kinetics_visible))

    # -- actions ----------------------------------------------------------------------------------
    def select_case(self, index) -> None:
        s = self.state
        if s.running:  # the run's outputs belong to the case on screen
            return
        s.case_error = s.case_note = s.run_error = s.pcr_text = s.pcr_raw = s.predicted_class = s.report_url = ""
        s.kinetics_ftv = s.kinetics_worst = s.kinetics_majority = ""
        s.kinetics_possible = s.recurrence_possible = s.crossmodal_possible = False
        self._clear_family_outputs()
        self._result = None
        self._clear_segment_choice()
        try:
            entry = self.cases[int(index)]
        except (TypeError, ValueError, IndexError):
            s.case_error = f"no case number {index}"
            return
        s.case_index = int(index)
        s.case_title = entry.case_id
        try:
            s.case_note = self.session.load_case(entry)
        except Exception as exc:  # noqa: BLE001 - whatever a bad folder raises becomes one line in the page
            log.warning("case %s: %s", entry.case_id, exc)
            s.case_loaded = False
            s.case_error = _message(exc)
            return
        for name, value in form_values(entry.clinical).items():
            s[_key(name)] = value
        s.errors = form_errors(self.clinical())
        s.case_loaded = True
        s.kinetics_possible = kinetics_available(entry)
        s.recurrence_possible = recurrence_available(entry)
        s.crossmodal_possible = crossmodal_available(entry)
        s.node_count = self.session.node_count()

    def run(self) -> None:
        if self.state.running or not self.state.case_loaded:
            return
        errors = form_errors(self.clinical())
        if errors:
            self.state.errors = errors
            return
        self.state.running = True  # at once: a second click must not start a second job
        asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        s = self.state
        entry = self.cases[s.case_index]
        self._runs += 1
        folder = self.work_dir / "runs" / f"{self._runs:03d}"
        with s:
            s.running, s.progress, s.progress_message = True, 0, "starting"
            s.run_error = s.pcr_text = s.pcr_raw = s.report_url = ""
            s.kinetics_ftv = s.kinetics_worst = s.kinetics_majority = ""  # the new run hides the old map
        result = await self._job_then(Job(prediction_command(entry, self.clinical(), folder, mask=self._mask)),
                                      lambda: self.session.import_outputs(folder / "out"), f"run on {entry.case_id}")
        if result is None:
            return
        self._result = result
        offer = runner_up_offer(result.prediction, result.record)
        self._runner_up = None if offer is None else offer[0]
        with s:
            s.running, s.progress, s.progress_message = False, 100, "done"
            s.pcr_raw = repr(result.probability)
            s.pcr_text = f"{result.probability:.3f}"
            s.predicted_class = str(result.record.get("predicted_class", ""))
            s.segment_source = self._segment_source(result.record)
            s.runner_up_text = "" if offer is None else offer[1]
            s.caution_text = prediction_cautions(result.record)
            s.runner_up_chosen = self._mask is not None
            s.node_count = self.session.node_count()

    def _segment_source(self, record: dict) -> str:
        """Where the prediction's tumour segment came from, in the page's words."""
        if self._mask is not None:
            return "the runner-up candidate, chosen here"
        return "automatic segmentation" if record.get("mask_source") == "model" else "the case's mask"

    def use_runner_up(self) -> None:
        """Predict again with the last prediction's runner-up candidate as the tumour segment.

        When the automatic choice outlined something else (a node, a patch of parenchyma) the tumour is
        mostly the second candidate: one click instead of drawing it. It stays the case's segment for
        later runs until the case is changed or :meth:`use_automatic` is pressed.
        """
        if self.state.running or self._runner_up is None:
            return
        self._mask = self._runner_up
        self.run()

    def use_automatic(self) -> None:
        """Predict again with the automatic segmentation (undoes :meth:`use_runner_up`)."""
        if self.state.running or self._mask is None:
            return
        self._mask = None
        self.run()

    async def _job_then(self, job: Job, load, what: str):
        """Run ``job`` off the UI thread with progress (Cancel reaches it), then ``load()`` its outputs.

        Returns what ``load`` returns, or None after showing the error in the page (logged in full).
        """
        loop = asyncio.get_running_loop()

        def progress(percent: int, message: str) -> None:
            loop.call_soon_threadsafe(self._set_progress, percent, message)

        self._job = job
        try:
            await asyncio.to_thread(job.run, progress)
            return load()
        except Exception as exc:  # noqa: BLE001 - shown in the page, logged in full here
            log.warning("%s failed: %s", what, exc, exc_info=not isinstance(exc, ResponseAIError))
            with self.state:
                self.state.running, self.state.run_error = False, _message(exc)
            return None
        finally:
            self._job = None

    def run_kinetics(self) -> None:
        """DCE kinetics on the case's phases with the prediction's tumour segment (a second job)."""
        s = self.state
        if s.running or self._result is None or not s.kinetics_possible:
            return
        s.running = True
        asyncio.ensure_future(self._run_kinetics())

    async def _run_kinetics(self) -> None:
        s, result = self.state, self._result
        entry = self.cases[s.case_index]
        out = result.prediction.parent / "kinetics"
        with s:
            s.running, s.progress, s.progress_message = True, 0, "DCE kinetics: starting"
            s.run_error = ""
        kinetics = await self._job_then(Job(kinetics_command(entry, result.prediction, out)),
                                        lambda: self.session.import_kinetics(out), f"kinetics on {entry.case_id}")
        if kinetics is None:
            return
        with s:
            s.running, s.progress, s.progress_message = False, 100, "done"
            s.kinetics_ftv = "—" if kinetics.ftv_ml is None else f"{kinetics.ftv_ml:.2f}"
            s.kinetics_worst, s.kinetics_majority = kinetics.worst_curve, kinetics.majority_class
            s.kinetics_visible = True
            s.node_count = self.session.node_count()

    def _family_folder(self) -> Path:
        self._runs += 1
        return self.work_dir / "runs" / f"{self._runs:03d}"

    def run_recurrence(self) -> None:
        """``responseai predict recurrence`` on the case folder's tiles / ultrasound / report + the form."""
        s = self.state
        if s.running or not s.case_loaded or not s.recurrence_possible:
            return
        s.running = True
        asyncio.ensure_future(self._run_recurrence())

    async def _run_recurrence(self) -> None:
        s = self.state
        entry = self.cases[s.case_index]
        folder = self._family_folder()
        with s:
            s.running, s.progress, s.progress_message = True, 0, "recurrence risk: starting"
            s.run_error = ""
            s.recurrence_group = ""
        try:
            job = Job(recurrence_command(entry, self.clinical(), folder))
        except Exception as exc:  # noqa: BLE001 - shown in the page
            with s:
                s.running, s.run_error = False, _message(exc)
            return
        record = await self._job_then(job, lambda: read_result(folder / "recurrence"), f"recurrence on {entry.case_id}")
        if record is None:
            return
        summary = recurrence_summary(record)
        with s:
            s.running, s.progress, s.progress_message = False, 100, "done"
            s.recurrence_group, s.recurrence_score = summary["risk_group"], summary["risk_score"]
            s.recurrence_rfs, s.recurrence_missing = summary["rfs"], summary["missing"]

    def run_crossmodal(self) -> None:
        """``responseai predict crossmodal`` on the case folder's mammogram (+ pathology)."""
        s = self.state
        if s.running or not s.case_loaded or not s.crossmodal_possible:
            return
        s.running = True
        asyncio.ensure_future(self._run_crossmodal())

    async def _run_crossmodal(self) -> None:
        s = self.state
        entry = self.cases[s.case_index]
        out = self._family_folder() / "crossmodal"
        with s:
            s.running, s.progress, s.progress_message = True, 0, "cross-modal diagnosis: starting"
            s.run_error = ""
            s.crossmodal_class = ""
        try:
            job = Job(crossmodal_command(entry, out))
        except Exception as exc:  # noqa: BLE001 - shown in the page
            with s:
                s.running, s.run_error = False, _message(exc)
            return
        record = await self._job_then(job, lambda: read_result(out), f"cross-modal on {entry.case_id}")
        if record is None:
            return
        summary = crossmodal_summary(record)
        with s:
            s.running, s.progress, s.progress_message = False, 100, "done"
            s.crossmodal_class, s.crossmodal_confidence = summary["predicted_class"], summary["confidence"]
            s.crossmodal_grade, s.crossmodal_conclusion = summary["grade"], summary["conclusion"]

    def cancel(self) -> None:
        """Stop the running prediction (its process tree); the page stays as it was before Run."""
        if self._job is not None:
            self._job.cancel()

    def _set_progress(self, percent: int, message: str) -> None:
        with self.state:
            self.state.progress, self.state.progress_message = percent, message

    def write_report(self) -> None:
        if self._result is None or self.state.report_busy:
            return
        asyncio.ensure_future(self._write_report())

    async def _write_report(self) -> None:
        s, result = self.state, self._result
        name = result.prediction.parent.name
        out = self.reports_dir / name
        with s:
            s.report_busy, s.report_url, s.run_error = True, "", ""
        try:
            if out.exists():
                shutil.rmtree(out)
            await asyncio.to_thread(Job(report_command(result.prediction, out)).run)
        except Exception as exc:  # noqa: BLE001
            with s:
                s.report_busy, s.run_error = False, _message(exc)
            return
        with s:
            s.report_busy, s.report_url = False, f"{REPORTS_URL}/{name}/report.pdf"

    # -- page -------------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        from trame.ui.vuetify3 import VAppLayout
        from trame.widgets import html
        from trame.widgets import vuetify3 as v

        with VAppLayout(self.server, theme="dark") as self.ui:
            with v.VAppBar(density="compact"):
                v.VToolbarTitle(TITLE)
            with v.VNavigationDrawer(permanent=True, width=400, location="left"):
                with html.Div(classes="pa-3"):
                    html.Div("Cases", classes="text-subtitle-1")
                    with v.VList(density="compact", id="case-list"):
                        v.VListItem(v_for="(c, i) in cases", key="i", title=("c.title",),
                                    subtitle=("c.error ? 'cannot be used' : ''",),
                                    active=("i === case_index",), id=("'case-' + i",), disabled=("running",),
                                    click=(self.ctrl.select_case, "[i]"))
                    v.VAlert(v_if="case_error", type="error", density="compact", text=("case_error",),
                             id="case-error", classes="my-2")
                    v.VAlert(v_if="case_note", type="info", density="compact", text=("case_note",),
                             id="case-note", classes="my-2")
                    with html.Div(v_if="case_loaded"):
                        html.Div("Clinical variables — {{ case_title }}", classes="text-subtitle-1 mt-2")
                        for f in self.fields:
                            key = _key(f["name"])
                            with html.Div(classes="mb-1"):
                                common = dict(label=f["label"], v_model=(key, ""), density="compact", hide_details=True,
                                              error=(f"!!errors.{f['name']}",), id=f"field-{f['name']}")
                                if "items" in f:
                                    v.VSelect(items=(f"items_{f['name']}",), **common)
                                else:
                                    v.VTextField(**common)
                                html.Div(f"{{{{ errors.{f['name']} }}}}", v_if=f"errors.{f['name']}",
                                         id=f"error-{f['name']}", classes="text-error text-caption")
                        v.VBtn("Run prediction", id="run", color="primary", block=True, classes="mt-2",
                               disabled=("running || Object.keys(errors).length > 0",), click=self.ctrl.run)
                        with html.Div(v_if="running", classes="mt-2"):
                            v.VProgressLinear(model_value=("progress",), color="primary", height=6)
                            html.Div("{{ progress }}% {{ progress_message }}", id="progress", classes="text-caption")
                            v.VBtn("Cancel", id="cancel", block=True, variant="outlined", classes="mt-1",
                                   click=self.ctrl.cancel)
                        v.VAlert(v_if="run_error", type="error", density="compact", text=("run_error",),
                                 id="run-error", classes="my-2")
                        with html.Div(v_if="pcr_text", id="result", classes="mt-3"):
                            html.Div("pCR probability: ", classes="text-h6 d-inline")
                            html.Span("{{ pcr_text }}", id="pcr-probability", classes="text-h6")
                            html.Span("{{ pcr_raw }}", id="pcr-raw", style="display:none")
                            html.Div("predicted: {{ predicted_class }}", classes="text-caption")
                            html.Div("tumour segment: {{ segment_source }}", id="segment-source",
                                     classes="text-caption")
                            v.VAlert(v_if="caution_text", type="warning", density="compact", text=("caution_text",),
                                     id="caution", classes="my-1")
                            with html.Div(v_if="runner_up_text", id="runner-up", classes="mt-1"):
                                html.Div("runner-up candidate: {{ runner_up_text }}", id="runner-up-text",
                                         classes="text-caption")
                                v.VBtn("Use runner-up candidate", id="use-runner-up", block=True, variant="outlined",
                                       disabled=("running",), click=self.ctrl.use_runner_up)
                            v.VBtn("Back to the automatic choice", v_if="runner_up_chosen", id="use-automatic",
                                   block=True, variant="outlined", classes="mt-1", disabled=("running",),
                                   click=self.ctrl.use_automatic)
                            v.VSlider(v_model=("opacity",), min=0, max=1, step=0.05, label="heatmap opacity",
                                      id="opacity", density="compact", hide_details=True, classes="mt-2")
                            v.VBtn("Write report", id="write-report", block=True, classes="mt-2",
                                   loading=("report_busy",), click=self.ctrl.write_report)
                            html.A("Download report (PDF)", v_if="report_url", href=("report_url",),
                                   download=True, target="_blank", id="report-link", classes="d-block mt-2")
                            v.VBtn("DCE kinetics", id="run-kinetics", block=True, classes="mt-2",
                                   disabled=("running || !kinetics_possible",), click=self.ctrl.run_kinetics)
                            html.Div("needs the pre, post1 and post2 phases", v_if="!kinetics_possible",
                                     classes="text-caption")
                            with html.Div(v_if="kinetics_worst", id="kinetics", classes="mt-2"):
                                html.Div("FTV: {{ kinetics_ftv }} ml", id="kinetics-ftv")
                                html.Div("worst curve: {{ kinetics_worst }}", id="kinetics-worst")
                                html.Div("majority class: {{ kinetics_majority }}", id="kinetics-majority")
                                v.VCheckbox(v_model=("kinetics_visible",), label="show the kinetic map",
                                            id="kinetics-visible", density="compact", hide_details=True)
                                with html.Div(classes="text-caption", id="kinetics-legend"):
                                    for name, rgb in kinetic_legend():
                                        html.Span(style=f"display:inline-block;width:10px;height:10px;"
                                                        f"margin:0 4px 0 8px;background:{rgb}")
                                        html.Span(name)
                        v.VBtn("Recurrence risk", v_if="recurrence_possible", id="run-recurrence", block=True,
                               classes="mt-3", disabled=("running || Object.keys(errors).length > 0",),
                               click=self.ctrl.run_recurrence)
                        with html.Div(v_if="recurrence_group", id="recurrence", classes="mt-2"):
                            html.Div("recurrence risk group: {{ recurrence_group }} "
                                     "(Cox log-risk {{ recurrence_score }})", id="recurrence-group")
                            html.Div("RFS probability — {{ recurrence_rfs }}", id="recurrence-rfs")
                            html.Div("missing modalities: {{ recurrence_missing }}", id="recurrence-missing",
                                     classes="text-caption")
                        v.VBtn("Cross-modal diagnosis", v_if="crossmodal_possible", id="run-crossmodal", block=True,
                               classes="mt-3", disabled=("running",), click=self.ctrl.run_crossmodal)
                        with html.Div(v_if="crossmodal_class", id="crossmodal", classes="mt-2"):
                            html.Div("diagnosis: {{ crossmodal_class }} (confidence {{ crossmodal_confidence }})",
                                     id="crossmodal-class")
                            html.Div("grade: {{ crossmodal_grade }}", id="crossmodal-grade")
                            html.Div("{{ crossmodal_conclusion }}", id="crossmodal-conclusion", classes="text-caption")
                    html.Span("{{ node_count }}", id="node-count", style="display:none")
            with v.VMain():
                with html.Div(style="position:relative; width:100%; height:calc(100vh - 48px);", id="views"):
                    self.layout_manager.initialize_layout_grid(self.ui)

    def start(self, host: str = "127.0.0.1", port: int = 8080, **kwargs):
        log.info("ResponseAI viewer on http://%s:%d/ (%d case(s))", host, port, len(self.cases))
        return self.server.start(host=host, port=port, open_browser=False, timeout=0,
                                 show_connection_info=False, **kwargs)
