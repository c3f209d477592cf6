"""Vocabulary of the cross-modal family: classes, grades, modalities, phantom domains.

The phantom, preprocessing, model and evaluation all read these names, never the reverse, so a
renamed class or an added domain is one edit here.
"""

from __future__ import annotations

FAMILY = "crossmodal"
TASK = "crossmodal_diagnosis"
CLASSES = ("normal", "benign", "in_situ", "invasive")
MALIGNANT = ("in_situ", "invasive")  # the classes that carry a pathological grade
GRADES = ("G1", "G2", "G3")
NO_GRADE = -1  # normal / benign: grade not applicable (masked out of the ordinal loss)
MODALITIES = ("mammogram", "pathology")
# Four acquisition sites of the phantom; each has its own mammography vendor look and H&E stain.
DOMAINS = ("siteA", "siteB", "siteC", "siteD")
IMAGE_SIZE = 64  # phantom crop / tile side in pixels (the small CPU model's input size)
MIN_IMAGE_SIDE = 32  # smaller inputs carry too little texture to say anything
TOP_K = 5  # pathology patches shown as evidence for the high-attention mammogram region
