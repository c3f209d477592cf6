"""``responseai predict crossmodal --manifest``: a 3-case cohort with one broken case runs to the end."""

from __future__ import annotations

import json

import pandas as pd
from PIL import Image as PILImage

from responseai import batch
from responseai.crossmodal import inference
from responseai.crossmodal.phantom import make_cohort


def test_cohort_records_the_broken_case_and_goes_on(tiny_weights, tmp_path):
    cohort = make_cohort(4, 0)
    for i in range(3):
        PILImage.fromarray((cohort.mammogram[i] * 65535).astype("uint16")).save(tmp_path / f"m{i}.png")
        PILImage.fromarray(cohort.pathology[i]).save(tmp_path / f"p{i}.png")
    rows = [  # case b: an RGB tile given as its mammogram; case c: a pair of two patients
        {"patient_id": "a", "mammogram": "m0.png", "pathology": "p0.png", "domain": "siteA", "class": "normal"},
        {"patient_id": "b", "mammogram": "p1.png", "pathology": "", "domain": "", "class": ""},
        {"patient_id": "c", "mammogram": "m2.png", "pathology": "p2.png", "domain": "",
         "mammogram_patient_id": "X1", "pathology_patient_id": "X2"},
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "manifest.csv", index=False)
    out = tmp_path / "out"
    rc = batch.run(inference.COHORT, "crossmodal",
                   ["--manifest", str(tmp_path / "manifest.csv"), "--out", str(out), "--weights", str(tiny_weights)])
    assert rc == 2  # input errors, no internal failure
    table = pd.read_csv(out / "predictions.csv", keep_default_na=False).set_index("case_id")
    assert list(table["status"]) == ["ok", "error", "error"]
    assert "single-channel" in table.at["b", "message"] and "different patients" in table.at["c", "message"]
    assert table.at["a", "modalities_used"] == "mammogram pathology"
    record = json.loads((out / "a" / "result.json").read_text(encoding="utf-8"))
    assert record["case_id"] == "a" and record["domain"] == "siteA" and (out / "a" / "heatmap.nrrd").is_file()
    assert not (out / "b").exists() and json.loads((out / "summary.json").read_text(encoding="utf-8"))["ok"] == 1
