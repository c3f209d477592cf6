"""Report text embedding: offline MiniLM from its wheel, checksum verified, empty text refused."""

from __future__ import annotations

import numpy as np
import pytest

from responseai.recurrence.text import EMBEDDING_DIM, EmptyReportError, embed_reports


def test_reports_embed_offline_into_normalised_vectors():
    vectors = embed_reports(["Lymphovascular invasion is present.", "There is evidence of lymphovascular invasion.",
                             "Margins are smooth and well circumscribed."])
    assert vectors.shape == (3, EMBEDDING_DIM) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]  # paraphrases lie closer than unrelated sentences


def test_empty_report_text_is_refused():
    with pytest.raises(EmptyReportError, match="report text 2 is empty"):
        embed_reports(["LVI: absent.", "   "])
