"""DCE kinetics in BreastResponseAI: MRML nodes → ``responseai predict kinetics`` job → colour-coded MRML results.

Imports ``slicer`` (MRML) and the core only, so CI runs it on a real scene from the
``slicer-core`` wheel and Slicer runs the very same code. :meth:`KineticsLogic.prepare_job`
checks everything first (three phases per exam with the breast family's checks, a non-empty
lesion ROI, the same patient at both timepoints) and writes the inputs; nothing is added to
the scene until the job has succeeded. :meth:`KineticsLogic.import_results` then creates, or
on a re-run reuses: the kinetic-class label map with its colour table (persistent / plateau /
washout), PE and SER volumes, a results table, and a plot chart of the time–intensity curves.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import slicer

from responseai.breast.preprocess import check_phases
from responseai.errors import ResponseAIError
from responseai.image import Image
from responseai.io import read_image, write_image
from responseai.kinetics.analysis import PHASE_TIME_FIELDS, check_dce, phase_times, require_phases
from responseai.kinetics.constants import (
    CLASS_COLORS, CLASS_NAMES, COLOR_TABLE_NAME, FOLLOWUP_PREFIX, MAP_FILES, NOT_ASSESSED, PHASES,
)
from responseai.kinetics.longitudinal import check_same_patient
from responseai.slicer_bridge.jobs import PredictionJob, job_environment, python_executable, run_command
from responseai.slicer_bridge.nodes import (
    add_sequence_phases,
    add_volume_node,
    frame_times,
    read_tumour_segment,
    update_volume_node,
    volume_node_to_image,
)
from responseai.slicer_bridge.outputs import heatmap_color_node, label_color_table, require_in_scene, set_results_table

PE_WINDOW = (0.0, 250.0)  # %: fat ≈ 0, strongly enhancing lesions 100–250
SER_WINDOW = (0.0, 2.0)
TIME_COLUMNS = {"baseline": "time (s)", "followup": "follow-up time (s)"}  # the curves table's x columns


@dataclass
class KineticsJob(PredictionJob):
    """A kinetics job; remembers its case name and the baseline post1 node its maps belong on."""

    case_name: str = ""
    reference: object | None = None


@dataclass
class KineticsOutputs:
    """The MRML nodes a run produced (passed back in on a re-run so they are reused) and ``result.json``."""

    record: dict
    nodes: dict = field(default_factory=dict)  # role → node: class, pe, ser, followup_class, …, table, curves, chart
    series: dict = field(default_factory=dict)  # curve name → vtkMRMLPlotSeriesNode


def kinetic_color_table(scene):
    """The one colour table of the kinetic classes in the scene (created on first use), names and colours set."""
    return label_color_table(scene, COLOR_TABLE_NAME, CLASS_NAMES, CLASS_COLORS, transparent=(NOT_ASSESSED,))


def patient_id_of(volume_node) -> str | None:
    """The DICOM patient ID above a volume in the subject hierarchy (None for files without one)."""
    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(volume_node.GetScene())
    item = hierarchy.GetItemByDataNode(volume_node)
    while item:
        patient = hierarchy.GetItemAttribute(item, "DICOM.PatientID")
        if patient:
            return patient
        item = hierarchy.GetItemParent(item)
    return None


def _images(phase_nodes: dict, exam: str) -> dict[str, Image]:
    """The exam's three phases as images; a missing one is named (kinetics needs the late phase too)."""
    images = {name: volume_node_to_image(phase_nodes[name]) if phase_nodes.get(name) is not None else None
              for name in PHASES}
    require_phases(images, exam)
    return images


def _patient(phase_nodes: dict, given: str | None) -> str | None:
    """The patient ID the user typed, else the one DICOM import recorded for the exam's post1."""
    node = phase_nodes.get("post1")
    return given or (patient_id_of(node) if node is not None else None)


def _present(scene, node) -> bool:
    return node is not None and bool(scene.IsNodePresent(node))


def _set_volume(scene, previous, image: Image, name: str, class_name: str = "vtkMRMLScalarVolumeNode"):
    """Update the previous run's node when it is still there (renamed), else add one."""
    if _present(scene, previous):
        previous.SetName(name)
        update_volume_node(previous, image)
        return previous
    return add_volume_node(scene, image, name, class_name)


def _style_scalar(node, window: tuple[float, float]) -> None:
    """Inferno over a fixed window, so runs and timepoints read on one scale."""
    display = node.GetDisplayNode()
    display.SetAndObserveColorNodeID(heatmap_color_node(node.GetScene()).GetID())
    display.AutoWindowLevelOff()
    display.SetWindowLevelMinMax(*window)


def result_rows(record: dict) -> dict[str, object]:
    """(quantity, value) rows of both timepoints and the change, as the table shows them."""
    rows: dict[str, object] = {}
    for timepoint in ("baseline", "followup"):
        summary = record.get(timepoint)
        if summary is None:
            continue
        label = "Baseline" if timepoint == "baseline" else "Follow-up"
        rows[f"{label} FTV (ml)"] = summary["ftv_ml"]
        rows.update({f"{label} FTV {name} (ml)": value for name, value in summary["ftv_by_ser_ml"].items()})
        rows[f"{label} worst curve"] = summary["worst_curve"] or "none"
        rows[f"{label} majority class"] = summary["majority_class"] or "none"
        rows.update({f"{label} share {name}": f"{share:.0%}" for name, share in summary["class_fractions"].items()})
        rows[f"{label} mean PE in FTV (%)"] = summary["mean_pe_ftv"]
        rows[f"{label} mean SER in FTV"] = summary["mean_ser_ftv"]
        rows[f"{label} longest diameter (mm)"] = summary["longest_diameter_ftv_mm"]
    changes = record.get("changes")
    if changes:
        rows["ΔFTV (%)"] = changes["delta_ftv_percent"]
        rows["Δ mean PE in FTV (points)"] = changes["delta_mean_pe_ftv"]
        rows["Δ longest diameter (mm)"] = changes["delta_longest_diameter_mm"]
        rows["Registration ROI coverage"] = f"{record['registration']['roi_coverage']:.0%}"
    rows["PE threshold (%)"] = record["config"]["pe_threshold"]
    rows["Note"] = "standard DCE definitions, no model; research use only"
    return rows


class KineticsLogic:
    """Reads the exams from the scene, prepares the job, turns its outputs into MRML nodes."""

    def __init__(self, scene) -> None:
        self.scene = scene

    # ---------------------------------------------------------------- inputs
    def phases_from_sequence(self, sequence_node, frames: str | None = None, exam: str = "follow-up") -> tuple[dict, str]:
        """An exam loaded as a sequence → its three phases as volume nodes (checked as the phases are: all three
        present, enhancement after contrast), and the sentence saying which frames and why."""
        def check(phases: dict[str, Image]) -> None:
            require_phases(phases, exam)
            check_phases(phases)

        return add_sequence_phases(self.scene, sequence_node, frames, check)

    def read_exam(self, phase_nodes: dict, segmentation_node, exam: str = "baseline",
                  resample: bool = False) -> tuple[dict[str, Image], Image]:
        """Three phases (checked as the breast module checks them) and the lesion ROI on the post1 grid."""
        images = _images(phase_nodes, exam)
        mask = read_tumour_segment(segmentation_node, phase_nodes["post1"])
        return check_dce(images, mask, resample, exam)

    def prepare_job(self, case_name: str, phase_nodes: dict, segmentation_node, followup_nodes: dict | None = None,
                    followup_segmentation=None, patient_id: str | None = None, followup_patient_id: str | None = None,
                    bspline: bool = False, folder: Path | None = None) -> KineticsJob:
        """Check both exams and the patient IDs, then write the inputs and return the job's command line."""
        followup_nodes = followup_nodes if followup_nodes and any(followup_nodes.values()) else None
        if followup_nodes is not None:
            check_same_patient(_patient(phase_nodes, patient_id), _patient(followup_nodes, followup_patient_id))
        images, mask = self.read_exam(phase_nodes, segmentation_node)
        followup_images, followup_mask = self._read_followup(followup_nodes, followup_segmentation) \
            if followup_nodes is not None else ({}, None)
        folder = Path(folder or tempfile.mkdtemp(prefix="responseai-kinetics-job-"))
        inputs = folder / "input"
        command = [python_executable(), "-m", "responseai.cli", "predict", "kinetics", "--case-id", case_name,
                   "--out", str(folder / "out"), "--mask", str(write_image(mask, inputs / "mask.nrrd"))]
        for prefix, exam in (("", images), ("followup_", followup_images)):
            for name, image in exam.items():
                option = f"--{prefix}{name}".replace("_", "-")
                command += [option, str(write_image(image, inputs / f"{prefix}{name}.nrrd"))]
        if followup_mask is not None:
            command += ["--followup-mask", str(write_image(followup_mask, inputs / "followup_mask.nrrd"))]
        if bspline:
            command.append("--bspline")
        times = {PHASE_TIME_FIELDS[exam]: frame_times(nodes, PHASES) for exam, nodes in
                 (("baseline", phase_nodes), ("followup", followup_nodes or {}))}
        if any(times.values()):  # exams taken from timed sequences: their curves at the frames' own times
            command += ["--config", json.dumps({k: v for k, v in times.items() if v})]
        return KineticsJob(folder, command, job_environment(), case_name, phase_nodes["post1"])

    def _read_followup(self, nodes: dict, segmentation_node) -> tuple[dict[str, Image], Image | None]:
        """Follow-up phases (all three) and its ROI if one is selected (else the job carries the baseline ROI over)."""
        try:
            if segmentation_node is not None:
                return self.read_exam(nodes, segmentation_node, "follow-up")
            return check_phases(_images(nodes, "follow-up")), None
        except ResponseAIError as exc:  # the same specific error, saying which exam it is about
            message = str(exc)
            raise type(exc)(message if message.startswith("follow-up") else f"follow-up exam: {message}") from exc

    # ---------------------------------------------------------------- outputs
    def import_results(self, job: KineticsJob, previous: KineticsOutputs | None = None) -> KineticsOutputs:
        """Label map + colour table, PE / SER volumes, table and curve chart; the previous run's nodes reused."""
        require_in_scene(self.scene, job.reference, "the baseline post-contrast 1 volume")
        record = json.loads((job.out / "result.json").read_text(encoding="utf-8"))
        old = previous.nodes if previous else {}
        nodes: dict = {}
        prefixes = {"": job.case_name, FOLLOWUP_PREFIX: f"{job.case_name} follow-up"}
        for prefix, label in prefixes.items():
            if prefix and record.get("followup") is None:
                continue
            classes = read_image(job.out / f"{prefix}{MAP_FILES['class']}", "kinetic class map")
            node = _set_volume(self.scene, old.get(f"{prefix}class"), classes, f"{label} kinetic class",
                               "vtkMRMLLabelMapVolumeNode")
            node.GetDisplayNode().SetAndObserveColorNodeID(kinetic_color_table(self.scene).GetID())
            nodes[f"{prefix}class"] = node
            for key, window in (("pe", PE_WINDOW), ("ser", SER_WINDOW)):
                image = read_image(job.out / f"{prefix}{MAP_FILES[key]}", f"{key} map")
                nodes[f"{prefix}{key}"] = _set_volume(self.scene, old.get(f"{prefix}{key}"), image,
                                                      f"{label} {key.upper()}")
                _style_scalar(nodes[f"{prefix}{key}"], window)
        nodes["table"] = set_results_table(self.scene, result_rows(record), f"{job.case_name} kinetics",
                                           old.get("table"))
        outputs = KineticsOutputs(record, nodes, dict(previous.series) if previous else {})
        self._set_curves(outputs, job.case_name, old)
        return outputs

    def _set_curves(self, outputs: KineticsOutputs, case_name: str, old: dict) -> None:
        """A table of the mean curves (one column per group and timepoint) plotted by one series each."""
        record = outputs.record
        times = phase_times(record["config"])
        columns = {TIME_COLUMNS["baseline"]: list(times["baseline"])}
        x_column = {}
        for timepoint, label in (("baseline", ""), ("followup", " (follow-up)")):
            for group, values in ((record.get(timepoint) or {}).get("curves") or {}).items():
                if values is not None:
                    columns[f"{group}{label}"], x_column[f"{group}{label}"] = values, TIME_COLUMNS[timepoint]
        if any(x == TIME_COLUMNS["followup"] for x in x_column.values()):  # each exam at its own frame times
            columns[TIME_COLUMNS["followup"]] = list(times["followup"])
        table = old.get("curves") if _present(self.scene, old.get("curves")) else \
            self.scene.AddNewNodeByClass("vtkMRMLTableNode", f"{case_name} curves")
        table.SetName(f"{case_name} curves")
        slicer.util.updateTableFromArray(table, np.array(list(columns.values()), dtype=float).T, list(columns))
        chart = old.get("chart") if _present(self.scene, old.get("chart")) else \
            self.scene.AddNewNodeByClass("vtkMRMLPlotChartNode", f"{case_name} curves")
        chart.SetName(f"{case_name} time–intensity curves")
        chart.SetTitle("Time–intensity curves of the lesion ROI")
        chart.SetXAxisTitle("time (s; nominal unless a DCE series gave the frames' times)")
        chart.SetYAxisTitle("mean relative enhancement (%)")
        chart.RemoveAllPlotSeriesNodeIDs()
        colours = {name: CLASS_COLORS[value] for value, name in CLASS_NAMES.items()}
        series = {}
        for name in x_column:
            node = outputs.series.get(name)
            if not _present(self.scene, node):
                node = self.scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", name)
            node.SetAndObserveTableNodeID(table.GetID())
            node.SetXColumnName(x_column[name])
            node.SetYColumnName(name)
            node.SetPlotType(slicer.vtkMRMLPlotSeriesNode.PlotTypeScatter)
            node.SetMarkerStyle(slicer.vtkMRMLPlotSeriesNode.MarkerStyleCircle)
            node.SetLineStyle(slicer.vtkMRMLPlotSeriesNode.LineStyleDash if "follow-up" in name
                              else slicer.vtkMRMLPlotSeriesNode.LineStyleSolid)
            node.SetColor(*colours.get(name.replace(" (follow-up)", ""), (0.2, 0.2, 0.2)))
            chart.AddAndObservePlotSeriesNodeID(node.GetID())
            series[name] = node
        for name, node in outputs.series.items():
            if name not in series and _present(self.scene, node):
                self.scene.RemoveNode(node)
        outputs.series = series
        outputs.nodes.update(curves=table, chart=chart)

    def run(self, job: KineticsJob, previous: KineticsOutputs | None = None, timeout: float = 600) -> KineticsOutputs:
        """Synchronous run of a prepared job (tests, scripting); raises with the job's ERROR line."""
        run_command(job.command, job.env, timeout)
        return self.import_results(job, previous)
