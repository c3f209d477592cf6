"""The kinetics family's vocabulary: phases, kinetic classes with their label values and colours.

Defined once; the analysis, phantom, report and the Slicer colour table read them, so a label
value means the same class in a NRRD file, a report legend and a Slicer view. Stdlib +
:mod:`responseai.manifest` only, so the Slicer panel can import it before pandas is installed.
"""

from __future__ import annotations

from responseai.manifest import Column, ManifestSchema, split_column

PHASES = ("pre", "post1", "post2")  # S0, S1 (early, ≈ 90–150 s), S2 (late, ≈ 5–8 min)
FOLLOWUP_PREFIX = "followup_"
TIMEPOINTS = ("baseline", "followup")

# Kinetic class label values (0 = voxel not assessed: not enhancing enough, or no pre-contrast signal).
NOT_ASSESSED = 0
PERSISTENT, PLATEAU, WASHOUT = 1, 2, 3
CLASS_NAMES = {NOT_ASSESSED: "not assessed", PERSISTENT: "persistent", PLATEAU: "plateau", WASHOUT: "washout"}
KINETIC_TYPES = ("persistent", "plateau", "washout")  # increasing suspicion (the worst-curve order)
CLASS_VALUES = {name: value for value, name in CLASS_NAMES.items()}
# The colours breast CAD workstations use: blue rising, yellow/green plateau, red washout.
CLASS_COLORS = {NOT_ASSESSED: (0.0, 0.0, 0.0), PERSISTENT: (0.17, 0.42, 0.90),
                PLATEAU: (0.98, 0.80, 0.10), WASHOUT: (0.89, 0.10, 0.11)}
COLOR_TABLE_NAME = "ResponseAI kinetic classes"

# The output files of `responseai predict kinetics` (the follow-up's carry the FOLLOWUP_PREFIX).
MAP_FILES = {"pe": "pe.nrrd", "ser": "ser.nrrd", "class": "kinetic_class.nrrd"}

# One row per patient; paths relative to the manifest's folder (what `responseai synth kinetics`
# writes; its other truth columns are kept as extra columns). Empty follow-up cells: baseline only.
MANIFEST_SCHEMA = ManifestSchema("kinetics", (
    Column("patient_id", "id", "patient identifier, unique (checked against followup_patient_id)", required=True),
    Column("followup_patient_id", "text", "patient ID of the follow-up exam, if it has its own"),
    split_column(),
    *(Column(p, "path", f"baseline {p} phase (file or DICOM folder)") for p in PHASES),
    Column("dce", "path", "instead of the baseline phases: one dynamic series (4D NIfTI / NRRD, or a DICOM folder)"),
    Column("dce_frames", "text", "frames of dce to use as pre, post1, post2, e.g. 0,2,5 (empty: chosen by time)"),
    Column("mask", "path", "baseline lesion ROI on the post1 grid", required=True),
    *(Column(FOLLOWUP_PREFIX + p, "path", f"follow-up {p} phase (empty: no follow-up)") for p in PHASES),
    Column(FOLLOWUP_PREFIX + "dce", "path", "instead of the follow-up phases: one dynamic series"),
    Column(FOLLOWUP_PREFIX + "dce_frames", "text", "frames of followup_dce to use as pre, post1, post2"),
    Column("followup_mask", "path", "follow-up lesion ROI (empty: the baseline ROI through the registration)"),
    Column("pcr", "category", "pathological complete response, 1 yes / 0 no (a label: prediction ignores it)",
           values=("0", "1")),
), one_of=(PHASES, ("dce",)))
