"""Model weights as ``safetensors`` plus a JSON model card; verified before anything is loaded.

Why not ``torch.save``: a pickle can run arbitrary code, and the weights a user points the
product at are untrusted. ``safetensors`` holds tensors only. The card says what the model
expects (inputs, channels, spacing, classes, threshold, preprocessing statistics) and carries
the sha256 of the weights file, so a truncated, swapped or corrupt file is refused with a
message that says which check failed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Callable
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from responseai import __version__
from responseai.errors import WeightsError

log = logging.getLogger(__name__)

CARD_FORMAT = 1
REQUIRED_CARD_KEYS = (
    "name", "version", "task", "architecture", "inputs", "classes", "threshold",
    "preprocessing", "training_data", "metrics", "weights_file", "sha256",
)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def card_path(weights_path: str | Path) -> Path:
    """``model.safetensors`` → ``model.json``."""
    return Path(weights_path).with_suffix(".json")


def save_model(model: torch.nn.Module, card: dict, weights_path: str | Path) -> dict:
    """Write ``weights_path`` (.safetensors) and its card; returns the completed card."""
    weights_path = Path(weights_path)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(weights_path), metadata={"name": str(card.get("name", ""))})
    full = {
        "card_format": CARD_FORMAT,
        "responseai_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **card,
        "weights_file": weights_path.name,
        "sha256": sha256_of(weights_path),
        "n_parameters": int(sum(v.numel() for v in state.values())),
    }
    missing = [k for k in REQUIRED_CARD_KEYS if k not in full]
    if missing:
        raise WeightsError(f"model card is missing {', '.join(missing)}")
    card_path(weights_path).write_text(json.dumps(full, indent=2, default=_jsonable) + "\n", encoding="utf-8")
    return full


def _jsonable(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read_card(weights_path: str | Path, expected_task: str | None = None) -> dict:
    """Read and check a model card (present, well-formed, right task)."""
    path = card_path(weights_path)
    if not path.exists():
        raise WeightsError(f"{path}: model card not found next to the weights")
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WeightsError(f"{path}: model card is not valid JSON ({exc})") from exc
    if not isinstance(card, dict):
        raise WeightsError(f"{path}: model card is not a JSON object")
    if not isinstance(card.get("card_format", 1), int) or card.get("card_format", 1) > CARD_FORMAT:
        raise WeightsError(f"{path}: card_format {card.get('card_format')!r} is newer than this ResponseAI reads "
                           f"({CARD_FORMAT}); update ResponseAI or use weights made for version {__version__}")
    missing = [k for k in REQUIRED_CARD_KEYS if k not in card]
    if missing:
        raise WeightsError(f"{path}: model card lacks {', '.join(missing)}")
    if expected_task and card["task"] != expected_task:
        raise WeightsError(f"{path}: card is for task '{card['task']}', expected '{expected_task}'")
    return card



def copy_with_card(weights: Path, out: Path, expected_task: str, **updates: object) -> Path:
    """Copy ``weights`` to ``out`` and write its card with ``updates``: a second stage fitted after
    training (a candidate ranker, an outline rule) travels in the card of the unchanged network,
    whose sha256 stays the same."""
    card = read_card(weights, expected_task=expected_task)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.resolve() != weights.resolve():
        shutil.copyfile(weights, out)
    card.update(updates, sha256=sha256_of(out), weights_file=out.name)
    card_path(out).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return out


def load_model(
    weights_path: str | Path,
    build: Callable[[dict], torch.nn.Module],
    expected_task: str | None = None,
) -> tuple[torch.nn.Module, dict]:
    """Verify card and checksum, build the network from the card, load tensors strictly."""
    weights_path = Path(weights_path)
    if not weights_path.exists():
        raise WeightsError(f"{weights_path}: weights file not found")
    card = read_card(weights_path, expected_task)
    actual = sha256_of(weights_path)
    if actual != card["sha256"]:
        raise WeightsError(
            f"{weights_path}: sha256 {actual[:12]}… does not match the card's {card['sha256'][:12]}… "
            "(truncated, corrupt or replaced file)"
        )
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{weights_path}: not a readable safetensors file ({exc})") from exc
    model = build(card)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0:3]
        raise WeightsError(f"{weights_path}: weights do not match the model the card describes: {' '.join(first)}") from exc
    model.eval()
    log.debug("loaded %s %s (%s)", card["name"], card["version"], weights_path)
    return model, card


T = TypeVar("T")


@lru_cache(maxsize=8)
def _load_version(loader: Callable[[Path], T], path: str, mtimes_ns: tuple[int, int]) -> T:
    return loader(Path(path))


def load_once(weights_path: str | Path, loader: Callable[[Path], T]) -> T:
    """``loader(path)`` once per weights *file version*: Slicer re-runs and cohorts reuse the model.

    The cache key is the resolved path *and* the modification times of the weights and their card,
    so a retrained file, or a card whose threshold or candidate ranker changed, is picked up instead
    of a stale model being served. ``loader`` must be a
    module-level function (it is part of the key) and should raise WeightsError on a bad file.
    """
    path = Path(weights_path).resolve()
    mtimes = tuple(p.stat().st_mtime_ns if p.exists() else 0 for p in (path, card_path(path)))
    return _load_version(loader, str(path), mtimes)
