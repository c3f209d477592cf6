"""Recurrence-risk section Logic: tile folder + ultrasound volume node + report text + clinical → job → MRML.

Imports ``slicer`` (MRML) and the core only, so CI runs it on a real scene from the
``slicer-core`` wheel and Slicer runs the same code. The model runs in a separate process
(``responseai predict recurrence``); :meth:`RecurrenceLogic.prepare_job` checks the inputs
first (clinical values, tile images, an ultrasound that is one finite image, at least one
modality) and nothing is added to the scene until the job has succeeded. Results: a
(quantity, value) table node, and the predicted recurrence-free survival curve as a table
node plotted by a plot series in a plot chart node.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import vtk

from responseai.clinical import validate_clinical
from responseai.io import write_image
from responseai.recurrence.constants import CLINICAL_SCHEMA, MODALITY_LABELS
from responseai.recurrence.inference import DEFAULT as DEFAULT_WEIGHTS
from responseai.recurrence.model import NoModalityError
from responseai.recurrence.preprocess import read_tiles
from responseai.slicer_bridge.jobs import PredictionJob, job_environment, python_executable, run_command
from responseai.slicer_bridge.nodes import volume_node_to_image
from responseai.slicer_bridge.outputs import set_results_table

CURVE_COLUMNS = ("time", "rfs")
# The module's pCR form already holds these (breast schema name → recurrence schema name); the panel
# asks only for what the form lacks (positive nodes, endocrine therapy) or a value to override.
FROM_BREAST_FORM = {"age": "age", "tumour_size_mm": "tumour_size", "histological_grade": "grade",
                    "menopausal_status": "menopausal", "ki67": "ki67"}


@dataclass
class RecurrenceJob(PredictionJob):
    case_name: str = ""


@dataclass
class RecurrenceOutputs:
    """The nodes a run made (reused on the next run) and the parsed ``result.json``."""

    table: object  # vtkMRMLTableNode: quantity / value
    curve_table: object  # vtkMRMLTableNode: time / rfs
    series: object  # vtkMRMLPlotSeriesNode
    chart: object  # vtkMRMLPlotChartNode
    record: dict


def clinical_from_form(form: dict, extra: dict | None = None) -> dict:
    """The recurrence clinical record from the module's clinical form plus the panel's own values.

    Empty / "unknown" form entries are left out (the model treats them as missing); ``extra``
    (the panel's values) wins over the form. Validation is :meth:`RecurrenceLogic.prepare_job`'s.
    """
    shared = {target: form.get(source) for source, target in FROM_BREAST_FORM.items()}
    record = {name: value for name, value in shared.items() if value not in (None, "", "unknown")}
    return {**record, **(extra or {})}


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def result_rows(record: dict) -> list[tuple[str, str]]:
    """What a clinician reads in the table: risk, group, RFS at each horizon, attention, missing inputs."""
    unit = record.get("time_unit", "years")
    rows = [("Risk group", record["risk_group"]), ("Risk score (Cox log-risk)", f"{record['risk_score']:+.3f}")]
    rows += [(f"RFS probability at {h.rstrip('y')} {unit}", _fmt(p)) for h, p in record["rfs_probability"].items()]
    rows += [(f"Attention: {MODALITY_LABELS.get(m, m)}", _fmt(w)) for m, w in record["modality_weights"].items()]
    rows += [("Missing modalities", ", ".join(record["missing_modalities"]) or "none"),
             ("Missing handled by", record["missing_handling"]),
             ("Unknown clinical variables", ", ".join(record["missing_clinical"]) or "none"),
             ("Model", f"{record['model']['name']} {record['model']['version']}"),
             ("Note", "research use only; probabilities from a model trained on a phantom cohort")]
    return rows


def _in_scene(scene, node) -> bool:
    return node is not None and bool(scene.IsNodePresent(node))


class RecurrenceLogic:
    """Builds and imports ``responseai predict recurrence`` jobs on a scene."""

    def __init__(self, scene) -> None:
        self.scene = scene

    def prepare_job(self, case_name: str, clinical: dict, tiles_folder: str | None = None, ultrasound_node=None,
                    report_text: str | None = None, weights: str | Path | None = None,
                    folder: Path | None = None) -> RecurrenceJob:
        """Validate, write the inputs to a temporary folder, return the job's command (scene untouched)."""
        record = validate_clinical(dict(clinical), CLINICAL_SCHEMA)
        tiles_folder = tiles_folder or None
        if tiles_folder:
            read_tiles(tiles_folder)  # a missing folder / no image is reported now, not by the job
        report_text = (report_text or "").strip() or None
        if not (tiles_folder or ultrasound_node is not None or report_text or any(v is not None for v in record.values())):
            raise NoModalityError("every modality is missing: give a pathology tile folder, an ultrasound volume, "
                                  "a report text or clinical values")
        image = volume_node_to_image(ultrasound_node) if ultrasound_node is not None else None
        folder = Path(folder or tempfile.mkdtemp(prefix="responseai-recurrence-job-"))
        inputs = folder / "input"
        inputs.mkdir(parents=True, exist_ok=True)
        clinical_path = inputs / "clinical.json"
        clinical_path.write_text(json.dumps({k: v for k, v in record.items() if v is not None}), encoding="utf-8")
        command = [python_executable(), "-m", "responseai.cli", "predict", "recurrence", "--clinical", str(clinical_path),
                   "--weights", str(weights or DEFAULT_WEIGHTS), "--case-id", case_name, "--out", str(folder / "out")]
        if tiles_folder:
            command += ["--pathology", str(tiles_folder)]
        if image is not None:
            command += ["--ultrasound", str(write_image(image, inputs / "ultrasound.nrrd"))]
        if report_text:
            (inputs / "report.txt").write_text(report_text + "\n", encoding="utf-8")
            command += ["--report-text", str(inputs / "report.txt")]
        return RecurrenceJob(folder, command, job_environment(), case_name)

    def _curve_table(self, record: dict, name: str, previous):
        node = previous if _in_scene(self.scene, previous) else self.scene.AddNewNodeByClass("vtkMRMLTableNode")
        node.SetName(name)
        table = node.GetTable()
        table.Initialize()
        for title, values in zip(CURVE_COLUMNS, (record["survival_curve"]["time"], record["survival_curve"]["rfs"])):
            column = vtk.vtkDoubleArray()
            column.SetName(title)
            for value in values:
                column.InsertNextValue(float(value))
            table.AddColumn(column)
        node.Modified()
        return node

    def import_results(self, job: RecurrenceJob, previous: RecurrenceOutputs | None = None) -> RecurrenceOutputs:
        """Results table + survival curve (table, plot series, plot chart); a re-run reuses the same nodes."""
        record = json.loads((job.out / "result.json").read_text(encoding="utf-8"))
        table = set_results_table(self.scene, dict(result_rows(record)), f"{job.case_name} recurrence risk",
                                  previous.table if previous else None)
        curve = self._curve_table(record, f"{job.case_name} RFS curve", previous.curve_table if previous else None)
        series = previous.series if previous and _in_scene(self.scene, previous.series) else \
            self.scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode")
        series.SetName(f"{job.case_name} predicted RFS")
        series.SetAndObserveTableNodeID(curve.GetID())
        series.SetXColumnName(CURVE_COLUMNS[0])
        series.SetYColumnName(CURVE_COLUMNS[1])
        series.SetPlotType(series.PlotTypeScatter)
        chart = previous.chart if previous and _in_scene(self.scene, previous.chart) else \
            self.scene.AddNewNodeByClass("vtkMRMLPlotChartNode")
        chart.SetName(f"{job.case_name} recurrence-free survival")
        if not chart.HasPlotSeriesNodeID(series.GetID()):
            chart.AddAndObservePlotSeriesNodeID(series.GetID())
        chart.SetXAxisTitle(record.get("time_unit", "years"))
        chart.SetYAxisTitle("recurrence-free probability")
        chart.SetTitle(f"{job.case_name}: {record['risk_group']} risk")
        return RecurrenceOutputs(table, curve, series, chart, record)

    def run(self, job: RecurrenceJob, previous: RecurrenceOutputs | None = None, timeout: float = 600) -> RecurrenceOutputs:
        """Synchronous run of a prepared job (tests, scripting); raises with the job's ERROR line."""
        run_command(job.command, job.env, timeout)
        return self.import_results(job, previous)
