"""The browser viewer's pieces without a browser: cases and confinement, the form, the job command,
node reuse on a real MRML scene, host safety and the ``serve`` verb (no model runs here)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from responseai.breast.constants import CLINICAL_SCHEMA
from responseai.clinical import field_errors
from responseai.viewer import cases as viewer_cases
from responseai.viewer.cases import CaseError, case_from_folder, collect_cases, form_errors, form_fields, form_values
from responseai.viewer.jobs import prediction_command


@pytest.fixture(scope="module")
def demo_folder(tmp_path_factory):
    from responseai.breast.demo import demo_case, write_case

    folder = tmp_path_factory.mktemp("viewer") / "demo"
    case = demo_case()
    write_case(case, folder)
    return folder, case


def test_a_case_folder_lists_its_files_and_clinical_values(demo_folder):
    folder, case = demo_folder
    entry = case_from_folder(folder)
    assert entry.error == ""
    assert {k: p.name for k, p in entry.files.items()} == {"pre": "pre.nrrd", "post1": "post1.nrrd",
                                                          "post2": "post2.nrrd", "mask": "mask.nrrd"}
    assert entry.clinical == case.clinical


def test_bad_case_folders_give_one_clear_message(tmp_path):
    assert "does not exist" in case_from_folder(tmp_path / "nowhere").error
    (tmp_path / "only-pre").mkdir()
    (tmp_path / "only-pre" / "pre.nrrd").write_bytes(b"x")
    assert "no post1 image" in case_from_folder(tmp_path / "only-pre").error
    (tmp_path / "only-pre" / "post1.nii.gz").write_bytes(b"x")
    (tmp_path / "only-pre" / "clinical.json").write_text("[1, 2", encoding="utf-8")
    assert "clinical.json is not a JSON object" in case_from_folder(tmp_path / "only-pre").error


def test_files_outside_the_case_folder_are_refused(tmp_path, demo_folder):
    folder, _ = demo_folder
    entry = case_from_folder(folder)
    with pytest.raises(CaseError, match="outside the case folder"):
        entry.confined(folder / ".." / "elsewhere.nrrd")
    link = tmp_path / "linked"
    link.mkdir()
    (link / "pre.nrrd").symlink_to(folder / "pre.nrrd")  # a link pointing out of the folder
    (link / "post1.nrrd").write_bytes(b"x")
    assert "outside the case folder" in case_from_folder(link).error


def test_same_named_folders_stay_distinguishable(tmp_path):
    for parent in ("a", "b"):
        (tmp_path / parent / "case").mkdir(parents=True)
    names = [e.case_id for e in collect_cases([str(tmp_path / "a" / "case"), str(tmp_path / "b" / "case")])]
    assert names == ["case", "case (2)"]


def test_the_form_is_the_slicer_forms_schema_and_messages():
    assert [f["name"] for f in form_fields()] == list(CLINICAL_SCHEMA)
    values = {"age": "300", "ki67": "abc", "er": "maybe"}
    assert form_errors(values) == field_errors(values, CLINICAL_SCHEMA)
    assert set(form_errors(values)) == {"age", "ki67", "er"}
    assert form_errors({"age": ""}) == {}
    diameters = {"tumour_size_mm": "18", "tumour_size_2_mm": "25"}  # the rule across fields, as in Slicer
    errors = form_errors(diameters)
    assert list(errors) == ["tumour_size_2_mm"] and "larger than the tumour size" in errors["tumour_size_2_mm"]
    assert form_values({"age": 48.0, "er": "positive", "ki67": None})["age"] == "48"


def test_the_run_is_the_cli_job_on_the_case_files(tmp_path, demo_folder):
    folder, _ = demo_folder
    entry = case_from_folder(folder)
    command = prediction_command(entry, {"age": "48", "er": "", "ki67": "35"}, tmp_path / "job")
    assert command[1:6] == ["-m", "responseai.cli", "predict", "breast", "--case-id"]
    for name in ("pre", "post1", "post2", "mask"):
        assert command[command.index(f"--{name}") + 1] == str(folder.resolve() / f"{name}.nrrd")
    assert json.loads((tmp_path / "job" / "clinical.json").read_text(encoding="utf-8")) == {"age": "48", "ki67": "35"}


def test_family_pieces_come_through_the_registry_by_name():
    assert viewer_cases.family_piece("constants:CLINICAL_SCHEMA") is CLINICAL_SCHEMA
    with pytest.raises(Exception, match="unknown model family"):
        viewer_cases.family_piece("constants:CLINICAL_SCHEMA", family="nope")


def _fake_prediction(folder: Path, case, probability: float) -> Path:
    from responseai.io import write_image, write_segmentation

    reference = case.phases["post1"]
    write_segmentation(case.mask, folder / "tumour.seg.nrrd")
    zz = np.linspace(0, 1, reference.shape[0], dtype=np.float32)[:, None, None]
    write_image(reference.with_array(np.broadcast_to(zz, reference.shape).copy()), folder / "attention.nrrd")
    (folder / "result.json").write_text(json.dumps({"case_id": case.patient_id, "pcr_probability": probability}),
                                        encoding="utf-8")
    return folder


def test_two_runs_reuse_the_nodes(slicer_app, demo_folder, tmp_path):
    from responseai.viewer.session import ViewerSession

    folder, case = demo_folder
    session = ViewerSession(slicer_app, views=lambda: [])
    session.load_case(case_from_folder(folder))
    first = session.import_outputs(_fake_prediction(tmp_path / "one", case, 0.25))
    count = session.node_count()
    nodes = (session.volume, session.segmentation, session.heatmap)
    second = session.import_outputs(_fake_prediction(tmp_path / "two", case, 0.5))
    session.load_case(case_from_folder(folder))  # the same (or another) case again
    assert (first.probability, second.probability) == (0.25, 0.5)
    assert session.node_count() == count
    assert (session.volume, session.segmentation, session.heatmap) == nodes


def test_a_bad_case_changes_no_node(slicer_app, demo_folder, tmp_path):
    from responseai.errors import ResponseAIError
    from responseai.viewer.session import ViewerSession

    folder, _ = demo_folder
    session = ViewerSession(slicer_app, views=lambda: [])
    session.load_case(case_from_folder(folder))
    count, volume = session.node_count(), session.volume
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "pre.nrrd").write_text("junk", encoding="utf-8")
    (bad / "post1.nrrd").write_text("junk", encoding="utf-8")
    with pytest.raises(ResponseAIError, match="cannot be read"):
        session.load_case(case_from_folder(bad))
    assert session.node_count() == count and session.volume is volume


def test_binding_beyond_loopback_warns(caplog):
    from responseai.viewer.serve import check_host

    with caplog.at_level(logging.WARNING):
        check_host("127.0.0.1")
        assert not caplog.records
        check_host("0.0.0.0")
    assert "trusted network only" in caplog.text


def test_serve_without_cases_is_an_input_error(capsys):
    from responseai.cli import main

    assert main(["serve"]) == 2
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--help"])
    assert exit_info.value.code == 0
    assert "--manifest" in capsys.readouterr().out


def test_a_manifest_gives_the_case_list(tmp_path, demo_folder):
    folder, case = demo_folder
    root = tmp_path / "cohort"
    root.mkdir()
    for name in ("pre", "post1"):
        (root / f"{name}.nrrd").write_bytes((folder / f"{name}.nrrd").read_bytes())
    manifest = root / "manifest.csv"
    manifest.write_text("patient_id,pre,post1,age\n"
                        "P1,pre.nrrd,post1.nrrd,48\n"
                        f"P2,{folder / 'pre.nrrd'},post1.nrrd,\n", encoding="utf-8")
    entries = collect_cases(manifest=str(manifest))
    assert [e.case_id for e in entries] == ["P1", "P2"]
    assert entries[0].error == "" and set(entries[0].files) == {"pre", "post1"}
    assert float(entries[0].clinical["age"]) == 48
    assert "outside the case folder" in entries[1].error  # a row pointing out of the manifest's folder


def test_cancel_kills_the_running_job_and_says_so():
    """Cancel from another thread (the page's) ends the job's process tree; the run raises, nothing loads."""
    import sys
    import threading
    import time

    from responseai.viewer.jobs import Job, JobCancelled

    job = Job([sys.executable, "-c", "import time; print('PROGRESS 5 working', flush=True); time.sleep(60)"])
    seen = threading.Event()
    threading.Timer(0.5, lambda: (seen.wait(10), job.cancel())).start()
    started = time.monotonic()
    with pytest.raises(JobCancelled, match="cancelled"):
        job.run(lambda percent, message: seen.set())
    assert time.monotonic() - started < 30 and job.lines == ["PROGRESS 5 working"]


def test_kinetics_is_the_cli_job_on_the_phases_and_the_predictions_segment(tmp_path, demo_folder):
    from responseai.errors import ResponseAIError
    from responseai.viewer.jobs import kinetics_available, kinetics_command

    folder, case = demo_folder
    entry = case_from_folder(folder)
    assert kinetics_available(entry)
    with pytest.raises(ResponseAIError, match="run the prediction first"):
        kinetics_command(entry, tmp_path / "empty", tmp_path / "kinetics")
    (tmp_path / "out").mkdir()
    prediction = _fake_prediction(tmp_path / "out", case, 0.5)
    command = kinetics_command(entry, prediction, tmp_path / "kinetics")
    assert command[1:7] == ["-m", "responseai.cli", "predict", "kinetics", "--case-id", entry.case_id]
    for name in ("pre", "post1", "post2"):
        assert command[command.index(f"--{name}") + 1] == str(folder.resolve() / f"{name}.nrrd")
    assert command[command.index("--mask") + 1] == str(prediction / "tumour.seg.nrrd")
    assert command[command.index("--out") + 1] == str(tmp_path / "kinetics")
    no_post2 = viewer_cases.CaseEntry("two-phase", entry.root, {k: entry.files[k] for k in ("pre", "post1")})
    assert not kinetics_available(no_post2)
    with pytest.raises(ResponseAIError, match="needs the post2 phase"):
        kinetics_command(no_post2, prediction, tmp_path / "kinetics")


class _FakeSliceView:
    """What the session asks of a trame-slicer slice view, over a real slice node of the scene."""

    def __init__(self, node):
        self.node = node

    def get_view_node(self):
        return self.node

    def __getattr__(self, name):  # set_background_volume_id, schedule_render, fit_view_to_content, …
        return lambda *args, **kwargs: None


def test_the_kinetics_job_output_becomes_a_coloured_label_map_reused_on_rerun(slicer_app, demo_folder, tmp_path):
    """The real `responseai predict kinetics` job on the demo case with the prediction's .seg.nrrd,
    then its class map as a label map with the family's colours in the views' label layer."""
    from responseai.io import read_image
    from responseai.kinetics.constants import CLASS_COLORS, CLASS_NAMES, COLOR_TABLE_NAME, NOT_ASSESSED
    from responseai.viewer.jobs import Job, kinetics_command
    from responseai.viewer.session import ViewerSession

    folder, case = demo_folder
    scene = slicer_app.scene
    slice_node = scene.AddNewNodeByClass("vtkMRMLSliceNode")
    slice_node.SetLayoutName("Red")
    composite = scene.AddNewNodeByClass("vtkMRMLSliceCompositeNode")
    composite.SetLayoutName("Red")
    session = ViewerSession(slicer_app, views=lambda: [_FakeSliceView(slice_node)])
    entry = case_from_folder(folder)
    session.load_case(entry)
    (tmp_path / "out").mkdir()
    session.import_outputs(_fake_prediction(tmp_path / "out", case, 0.5))
    out = tmp_path / "kinetics"
    Job(kinetics_command(entry, tmp_path / "out", out)).run()
    record = json.loads((out / "result.json").read_text(encoding="utf-8"))
    assert record["family"] == "kinetics" and record["inputs"]["mask"].endswith("tumour.seg.nrrd")

    result = session.import_kinetics(out)
    label = session.kinetics
    assert label.IsA("vtkMRMLLabelMapVolumeNode")
    assert result.ftv_ml == pytest.approx(record["baseline"]["ftv_ml"]) and result.ftv_ml > 0
    assert result.worst_curve == record["baseline"]["worst_curve"] in CLASS_NAMES.values()
    assert result.majority_class == record["baseline"]["majority_class"]
    from responseai.slicer_bridge.nodes import volume_node_to_image

    np.testing.assert_array_equal(volume_node_to_image(label).array,
                                  read_image(out / "kinetic_class.nrrd", "classes").array)
    table = scene.GetFirstNodeByName(COLOR_TABLE_NAME)
    assert label.GetDisplayNode().GetColorNodeID() == table.GetID()
    for value, name in CLASS_NAMES.items():
        rgba = [0.0] * 4
        table.GetColor(value, rgba)
        assert table.GetColorName(value) == name
        assert rgba == pytest.approx([*CLASS_COLORS[value], 0.0 if value == NOT_ASSESSED else 1.0], abs=1 / 255)
    assert composite.GetLabelVolumeID() == label.GetID()
    session.show_kinetics(False)  # the page's "show the kinetic map" box
    assert composite.GetLabelVolumeID() is None
    session.show_kinetics(True)
    assert composite.GetLabelVolumeID() == label.GetID()

    count = session.node_count()
    session.import_kinetics(out)  # a re-run: the same label map and colour table, no new node
    assert session.kinetics is label and session.node_count() == count
    assert scene.GetNodesByName(COLOR_TABLE_NAME).GetNumberOfItems() == 1
    session.import_outputs(tmp_path / "out")  # a new prediction hides the previous kinetic map
    assert composite.GetLabelVolumeID() is None


def _picture(path: Path, shape: tuple[int, ...], seed: int = 0) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, shape, dtype=np.uint8)).save(path)
    return path


@pytest.fixture()
def family_case(tmp_path, demo_folder):
    """The demo case's phases plus tiny recurrence (tiles/, ultrasound, report) and cross-modal inputs."""
    folder, case = demo_folder
    root = tmp_path / "family-case"
    root.mkdir()
    for name in ("pre", "post1"):
        (root / f"{name}.nrrd").write_bytes((folder / f"{name}.nrrd").read_bytes())
    (root / "clinical.json").write_text(json.dumps({"age": 52, "positive_nodes": 3, "er": "positive"}),
                                        encoding="utf-8")
    for i in range(3):
        _picture(root / "tiles" / f"t{i}.png", (32, 32, 3), i)
    _picture(root / "ultrasound.png", (64, 64), 7)
    (root / "report.txt").write_text("Invasive ductal carcinoma, grade 2, 20 mm.", encoding="utf-8")
    _picture(root / "mammogram.png", (256, 256), 8)
    _picture(root / "pathology.png", (64, 64, 3), 9)
    return root


def test_other_families_inputs_are_found_and_their_buttons_offered_only_when_present(family_case, demo_folder):
    from responseai.viewer.jobs import crossmodal_available, recurrence_available

    folder, _ = demo_folder
    entry = case_from_folder(family_case)
    assert entry.error == ""
    assert {k: p.name for k, p in entry.files.items() if k not in ("pre", "post1")} == {
        "tiles": "tiles", "ultrasound": "ultrasound.png", "report": "report.txt", "mammogram": "mammogram.png",
        "pathology": "pathology.png"}
    assert recurrence_available(entry) and crossmodal_available(entry)
    plain = case_from_folder(folder)  # the demo case: phases only
    assert not recurrence_available(plain) and not crossmodal_available(plain)
    for name in ("tiles", "ultrasound", "mammogram"):  # one recurrence input is enough; cross-modal needs a mammogram
        only = viewer_cases.CaseEntry("one", entry.root, {"pre": entry.files["pre"], name: entry.files[name]})
        assert recurrence_available(only) == (name != "mammogram")
        assert crossmodal_available(only) == (name == "mammogram")
    pathology_only = viewer_cases.CaseEntry("p", entry.root, {"pathology": entry.files["pathology"]})
    assert not crossmodal_available(pathology_only)
    broken = viewer_cases.CaseEntry("bad", entry.root, dict(entry.files), error="no post1 image")
    assert not recurrence_available(broken) and not crossmodal_available(broken)


def test_a_tile_linked_out_of_the_case_folder_is_refused(family_case, tmp_path):
    outside = _picture(tmp_path / "elsewhere" / "t.png", (32, 32, 3))
    (family_case / "tiles" / "linked.png").symlink_to(outside)
    assert "outside the case folder" in case_from_folder(family_case).error


def test_the_picture_suffixes_and_form_mapping_agree_with_the_families():
    from responseai.crossmodal.preprocess import PIXEL_SUFFIXES
    from responseai.recurrence.constants import CLINICAL_SCHEMA as RECURRENCE_SCHEMA
    from responseai.recurrence.preprocess import IMAGE_SUFFIXES as RECURRENCE_SUFFIXES

    assert viewer_cases.PICTURE_SUFFIXES == tuple(RECURRENCE_SUFFIXES) == tuple(PIXEL_SUFFIXES)
    for source, target in viewer_cases.RECURRENCE_FROM_FORM.items():  # same meaning: same categories / units
        breast, recurrence = CLINICAL_SCHEMA[source], RECURRENCE_SCHEMA[target]
        assert breast.is_categorical == recurrence.is_categorical
        assert breast.categories == recurrence.categories and breast.units == recurrence.units


def test_the_recurrence_and_crossmodal_jobs_are_their_clis_on_the_case_files(family_case, tmp_path):
    from responseai.errors import ResponseAIError
    from responseai.viewer.jobs import crossmodal_command, recurrence_command

    entry = case_from_folder(family_case)
    root = family_case.resolve()
    form = {"age": "48", "tumour_size_mm": "25", "histological_grade": "2", "menopausal_status": "",
            "ki67": "30", "er": "positive"}
    command = recurrence_command(entry, form, tmp_path / "job")
    assert command[1:7] == ["-m", "responseai.cli", "predict", "recurrence", "--case-id", entry.case_id]
    assert command[command.index("--pathology") + 1] == str(root / "tiles")
    assert command[command.index("--ultrasound") + 1] == str(root / "ultrasound.png")
    assert command[command.index("--report-text") + 1] == str(root / "report.txt")
    assert command[command.index("--out") + 1] == str(tmp_path / "job" / "recurrence")
    clinical = json.loads(Path(command[command.index("--clinical") + 1]).read_text(encoding="utf-8"))
    # the form's values under the recurrence names (unknown left out), positive nodes from clinical.json
    assert clinical == {"age": "48", "tumour_size": "25", "grade": "2", "ki67": "30", "positive_nodes": 3}

    command = crossmodal_command(entry, tmp_path / "cm")
    assert command[1:7] == ["-m", "responseai.cli", "predict", "crossmodal", "--case-id", entry.case_id]
    assert command[command.index("--mammogram") + 1] == str(root / "mammogram.png")
    assert command[command.index("--pathology") + 1] == str(root / "pathology.png")
    no_pathology = viewer_cases.CaseEntry("m", entry.root, {"mammogram": entry.files["mammogram"]})
    assert "--pathology" not in crossmodal_command(no_pathology, tmp_path / "cm")
    nothing = viewer_cases.CaseEntry("none", entry.root, {"pre": entry.files["pre"]})
    with pytest.raises(ResponseAIError, match="no recurrence input"):
        recurrence_command(nothing, form, tmp_path / "job")
    with pytest.raises(ResponseAIError, match="no mammogram"):
        crossmodal_command(nothing, tmp_path / "cm")


def test_the_recurrence_and_crossmodal_jobs_run_and_their_outputs_read_as_the_page_shows_them(family_case, tmp_path):
    """One real run of each CLI (shipped weights, ≈ 6 s each) and the text the page shows from result.json."""
    from responseai.viewer.jobs import (
        Job, crossmodal_command, crossmodal_summary, read_result, recurrence_command, recurrence_summary,
    )

    entry = case_from_folder(family_case)
    seen = []
    Job(recurrence_command(entry, {"age": "48", "ki67": "30"}, tmp_path / "rec")).run(lambda p, m: seen.append(p))
    record = read_result(tmp_path / "rec" / "recurrence")
    summary = recurrence_summary(record)
    assert seen and seen[-1] == 100
    assert summary["risk_group"] == record["risk_group"] in ("low", "intermediate", "high")
    assert summary["rfs"] == ", ".join(f"{h[:-1]} y: {p:.2f}" for h, p in record["rfs_probability"].items())
    assert list(record["rfs_probability"]) == ["3y", "5y", "7y"]
    assert summary["missing"] == (", ".join(record["missing_modalities"]) or "none")

    Job(crossmodal_command(entry, tmp_path / "cm")).run()
    record = read_result(tmp_path / "cm")
    summary = crossmodal_summary(record)
    assert summary["predicted_class"] == record["predicted_class"].replace("_", " ")
    assert summary["confidence"] == f"{record['confidence']:.3f}"
    assert summary["grade"] == (record["predicted_grade"] if record["grade_applies"] else "not applicable")
    assert summary["conclusion"] == record["conclusion"] and summary["conclusion"]


def test_a_case_given_as_one_dynamic_series_loads_and_runs_on_it(slicer_app, demo_folder, tmp_path):
    """A folder with dce.nii.gz (a 4D file) instead of the phases: the page shows its early frame, the breast and the
    kinetics jobs get --dce; a manifest row's dce_frames travels with it; phases and a series together are refused."""
    import SimpleITK as sitk

    from responseai.io import to_sitk
    from responseai.viewer.jobs import kinetics_available, kinetics_command
    from responseai.viewer.session import ViewerSession

    _, case = demo_folder
    folder = tmp_path / "dynamic"
    folder.mkdir()
    frames = [case.phases[p] for p in ("pre", "post1", "post2")]
    sitk.WriteImage(sitk.JoinSeries([to_sitk(f) for f in frames]), str(folder / "dce.nii.gz"))
    entry = case_from_folder(folder)
    assert entry.error == "" and set(entry.files) == {"dce"}
    session = ViewerSession(slicer_app, views=lambda: [])
    assert session.load_case(entry).startswith("DCE series: 3 frames without acquisition times: frame 0 taken as")
    from responseai.slicer_bridge.nodes import volume_node_to_image

    assert np.array_equal(volume_node_to_image(session.volume).array, case.phases["post1"].array)
    command = prediction_command(entry, {}, tmp_path / "job")
    assert command[command.index("--dce") + 1] == str(folder / "dce.nii.gz") and "--pre" not in command
    (tmp_path / "prediction").mkdir()
    (tmp_path / "prediction" / "tumour.seg.nrrd").write_bytes(b"x")
    assert kinetics_available(entry)
    assert "--dce" in kinetics_command(entry, tmp_path / "prediction", tmp_path / "kinetics")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("patient_id,dce,dce_frames\nD1,dynamic/dce.nii.gz,\"0,1\"\n", encoding="utf-8")
    row = collect_cases(manifest=str(manifest))[0]
    assert row.dce_frames == "0,1"
    assert prediction_command(row, {}, tmp_path / "job2")[-2:] == ["--dce-frames", "0,1"]
    sitk.WriteImage(to_sitk(frames[0]), str(folder / "pre.nrrd"))
    assert "both a dynamic series" in case_from_folder(folder).error
