"""Report as data (sections of rows + images), its JSON schema check, and the A4 PDF.

:func:`make_report` is the generic shape every family fills (each family's ``report`` module
builds its sections); :func:`write_report` validates before writing and writes ``report.json``,
``report.pdf`` and the snapshots through :func:`staged_output_dir`, so a failure leaves either
the previous complete report or nothing — never a PDF without its JSON.
"""

from __future__ import annotations

import json
import logging
import shutil
import textwrap
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path

from responseai.errors import ResponseAIError
from responseai.outputs import staged_output_dir
from responseai.reports.formatting import format_value
from responseai.resources import schema_path

log = logging.getLogger(__name__)

REPORT_FORMAT = 1
DISCLAIMER = "Research use only — not a medical device. Not for diagnosis or treatment decisions."
A4_INCHES = (8.27, 11.69)
SNAPSHOT_CAPTIONS = {"axial": "Axial", "sagittal": "Sagittal", "coronal": "Coronal"}
CALIBRATION_ECE_OK = 0.05  # expected calibration error under which a probability reads as a risk


class ReportError(ResponseAIError):
    """A report does not match its schema or cannot be written; the message says where."""


def make_report(report_type: str, title: str, case_id: str, sections: Sequence[tuple[str, Sequence[tuple[str, object]]]],
                headline: Mapping[str, str], data: Mapping[str, object], images: Mapping[str, str] | None = None,
                created: str | None = None, image_legend: str = "") -> dict:
    """The generic report: ``sections`` as ``(title, [(quantity, value), ...])``, values as text.

    ``headline`` is the one result the reader must not miss (``label``, ``value``, ``detail``, and an
    optional ``caution``: what to check before using it, printed in red under it);
    ``data`` keeps the machine-readable numbers; ``images`` maps snapshot keys to captions;
    ``image_legend`` says what the overlay shows (each family words its own), so a figure is never
    described as something it is not.
    """
    return {
        "report_format": REPORT_FORMAT,
        "report_type": report_type,
        "title": title,
        "case_id": case_id,
        "created": created or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "disclaimer": DISCLAIMER,
        "headline": dict(headline),
        "sections": [{"title": t, "rows": [[str(k), format_value(v)] for k, v in rows]} for t, rows in sections],
        "images": [{"key": key, "caption": caption} for key, caption in (images or SNAPSHOT_CAPTIONS).items()],
        "data": dict(data),
        "image_legend": image_legend,
    }


def ci_text(metric: Mapping[str, float] | None) -> str:
    """'0.82 (95 % CI 0.65–0.95)' from a model card metric entry."""
    if not metric:
        return "not reported"
    return f"{metric['value']:.2f} (95 % CI {metric['ci_low']:.2f}–{metric['ci_high']:.2f})"


def calibration_note(card: Mapping) -> str:
    """Whether the probability can be read as a risk, from the card's validation ECE."""
    ece = card.get("metrics", {}).get("val", {}).get("ece")
    n_val = card.get("training_data", {}).get("n_val", "?")
    if not ece:
        return "calibration not reported: read the probability as a ranking score, not a risk"
    quality = "approximately calibrated" if ece["value"] <= CALIBRATION_ECE_OK else "not well calibrated"
    return (f"{quality} on {n_val} validation cases (ECE {ci_text(ece)}); "
            + ("usable as a risk estimate" if quality.startswith("approx") else "read as a ranking score, not a risk"))


def validate_report(report: Mapping, schema: Path | None = None) -> None:
    """Raise :class:`ReportError` naming the first offending field when the report breaks its schema."""
    import jsonschema

    schema = schema or schema_path(str(report.get("report_type")))
    if not schema.is_file():
        raise ReportError(f"no schema for report type {report.get('report_type')!r} (expected {schema})")
    validator = jsonschema.Draft202012Validator(json.loads(schema.read_text(encoding="utf-8")))
    error = jsonschema.exceptions.best_match(validator.iter_errors(report))
    if error is not None:
        where = "/".join(map(str, error.absolute_path)) or "(top level)"
        raise ReportError(f"report {where}: {error.message}")


def write_report(report: Mapping, snapshots: Mapping[str, Path], out_dir: str | Path,
                 schema: Path | None = None) -> dict[str, Path]:
    """Write ``report.json``, ``report.pdf`` and ``snapshots/*.png`` into ``out_dir``, all or nothing.

    Only images listed in the report and present in ``snapshots`` are included, so a report
    without rendering (no OpenGL) is still complete, just without figures.
    """
    report = json.loads(json.dumps(report))  # a deep, JSON-clean copy the caller cannot alias
    report["images"] = [dict(image, file=f"snapshots/{image['key']}.png")
                        for image in report["images"] if image["key"] in snapshots]
    validate_report(report, schema)
    out_dir = Path(out_dir)
    with staged_output_dir(out_dir) as staging:
        (staging / "snapshots").mkdir()
        for image in report["images"]:
            shutil.copyfile(snapshots[image["key"]], staging / image["file"])
        (staging / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        _write_pdf(report, staging, staging / "report.pdf")
    log.debug("report for %s written to %s", report["case_id"], out_dir)
    return {"json": out_dir / "report.json", "pdf": out_dir / "report.pdf",
            **{image["key"]: out_dir / image["file"] for image in report["images"]}}


# --- PDF ------------------------------------------------------------------------------------
# Positions are figure fractions of an A4 page; fonts in points (10 pt body reads well printed).
MARGIN = 0.07
BODY_PT, SMALL_PT, TITLE_PT, SECTION_PT = 9.5, 8, 16, 11.5
LINE = 0.0165  # one body line
WRAP_CHARS = 62  # value column width at BODY_PT
KEY_WRAP_CHARS = 38
ALERT_RED = "#b3001b"


def _write_pdf(report: Mapping, folder: Path, path: Path) -> None:
    """A4 pages: disclaimer banner, headline, snapshots, then the sections flowing over pages."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_pdf import PdfPages

    with matplotlib.rc_context({"pdf.fonttype": 42, "font.family": "DejaVu Sans"}):  # 42: text stays searchable
        metadata = {"Title": f"{report['title']} — {report['case_id']}", "Subject": DISCLAIMER, "Creator": "ResponseAI"}
        with PdfPages(path, metadata=metadata) as pdf:
            figure, y = _new_page(report, 1)
            y = _draw_headline(figure, report, y)
            y = _draw_images(figure, report, folder, y)
            page = 1
            for section in report["sections"]:
                for lines in _section_blocks(section):
                    if y - len(lines) * LINE < MARGIN + 0.04:
                        _flush(pdf, figure)
                        page += 1
                        figure, y = _new_page(report, page)
                    y = _draw_block(figure, lines, y)
            _flush(pdf, figure)


def _flush(pdf, figure) -> None:
    """Save the page and free it (pyplot keeps every open figure alive otherwise)."""
    import matplotlib.pyplot as plt

    pdf.savefig(figure)
    plt.close(figure)


def _new_page(report: Mapping, page: int):
    """A page with the red disclaimer banner on top and the case/page footer; returns (figure, y)."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    figure = plt.figure(figsize=A4_INCHES)
    figure.patches.append(Rectangle((0, 0.955), 1, 0.045, transform=figure.transFigure, color=ALERT_RED))
    figure.text(0.5, 0.9775, "RESEARCH USE ONLY — NOT A MEDICAL DEVICE", ha="center", va="center",
                color="white", fontsize=13, weight="bold")
    figure.text(MARGIN, 0.025, f"{report['case_id']} · {report['title']} · {report['created']}", fontsize=SMALL_PT,
                color="0.35")
    figure.text(1 - MARGIN, 0.025, f"page {page}", fontsize=SMALL_PT, color="0.35", ha="right")
    figure.text(MARGIN, 0.04, DISCLAIMER, fontsize=SMALL_PT, color=ALERT_RED)
    if page > 1:
        return figure, 0.93
    figure.text(MARGIN, 0.925, report["title"], fontsize=TITLE_PT, weight="bold", va="top")
    figure.text(MARGIN, 0.893, f"Case {report['case_id']}    Report date {report['created'][:10]}",
                fontsize=BODY_PT + 1, va="top")
    return figure, 0.865


def _draw_headline(figure, report: Mapping, y: float) -> float:
    """The result in a box, large: the one number a reader looks for first."""
    from matplotlib.patches import FancyBboxPatch

    headline = report["headline"]
    figure.patches.append(FancyBboxPatch((MARGIN, y - 0.062), 1 - 2 * MARGIN, 0.058, transform=figure.transFigure,
                                         boxstyle="round,pad=0.004", facecolor="#f1f4f8", edgecolor="0.6"))
    figure.text(MARGIN + 0.02, y - 0.022, f"{headline['label']}: {headline['value']}", fontsize=15, weight="bold",
                va="center")
    figure.text(MARGIN + 0.02, y - 0.047, headline.get("detail", ""), fontsize=BODY_PT + 0.5, va="center")
    y -= 0.08
    if headline.get("caution"):  # what must be checked before the number is used: under the box, in red
        for line in textwrap.wrap(f"Check before use: {headline['caution']}", WRAP_CHARS + 30):
            figure.text(MARGIN + 0.02, y, line, fontsize=BODY_PT, va="top", color=ALERT_RED, weight="bold")
            y -= LINE
        y -= 0.01
    return y


def _draw_images(figure, report: Mapping, folder: Path, y: float) -> float:
    """Snapshots side by side, square, captioned, with the overlay legend under them."""
    import matplotlib.image as mpimg

    images = report["images"]
    if not images:
        figure.text(MARGIN, y - 0.01, "Snapshots not available (no offscreen rendering).", fontsize=BODY_PT,
                    style="italic", va="top")
        return y - 0.03
    gap, width = 0.015, (1 - 2 * MARGIN - 0.015 * (len(images) - 1)) / len(images)
    height = width * A4_INCHES[0] / A4_INCHES[1]
    for index, image in enumerate(images):
        axes = figure.add_axes((MARGIN + index * (width + gap), y - 0.02 - height, width, height))
        axes.imshow(mpimg.imread(folder / image["file"]), interpolation="lanczos")
        axes.set_xticks([])
        axes.set_yticks([])
        figure.text(MARGIN + index * (width + gap), y - 0.005, image["caption"], fontsize=BODY_PT + 0.5,
                    weight="bold", va="top")
    legend_y = y - 0.03 - height
    legend = textwrap.fill(report.get("image_legend", ""), 110)
    figure.text(MARGIN, legend_y, legend, fontsize=SMALL_PT, va="top", color="0.25")
    return legend_y - 0.04


def _section_blocks(section: Mapping) -> list[list[tuple[str, str, str]]]:
    """Section as blocks of (kind, key, value) lines; a block (title + first row, or a row) never splits."""
    blocks: list[list[tuple[str, str, str]]] = []
    title = [("title", section["title"], "")]
    for key, value in section["rows"]:
        keys = textwrap.wrap(key, KEY_WRAP_CHARS) or [""]
        values = textwrap.wrap(value, WRAP_CHARS) or [""]
        n = max(len(keys), len(values))
        lines = [("row", keys[i] if i < len(keys) else "", values[i] if i < len(values) else "") for i in range(n)]
        blocks.append(title + lines)
        title = []
    return blocks or [title]


def _draw_block(figure, lines: list[tuple[str, str, str]], y: float) -> float:
    """Draw section title and key/value lines from ``y`` down; returns the next free y."""
    for kind, key, value in lines:
        if kind == "title":
            y -= 0.012
            figure.text(MARGIN, y, key, fontsize=SECTION_PT, weight="bold", va="top", color="#1f3a5f")
            figure.add_artist(_rule(y - 0.021))
            y -= 0.028
            continue
        figure.text(MARGIN + 0.01, y, key, fontsize=BODY_PT, va="top", color="0.3")
        figure.text(0.42, y, value, fontsize=BODY_PT, va="top")
        y -= LINE
    return y


def _rule(y: float):
    """A thin line under a section title."""
    from matplotlib.lines import Line2D

    return Line2D([MARGIN, 1 - MARGIN], [y, y], color="#1f3a5f", linewidth=0.6)
