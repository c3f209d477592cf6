"""Exceptions with messages a radiologist can act on.

Every input problem the product can detect gets its own class so that the CLI, the Slicer
Logic and the tests can tell them apart, and each message names the offending file, phase,
field or value instead of a generic "failed to load".
"""

from __future__ import annotations


class ResponseAIError(Exception):
    """Base class of every error the core raises on purpose."""


class InputFileError(ResponseAIError):
    """A file or folder is missing, unreadable or of an unsupported kind."""


class MissingPhaseError(ResponseAIError):
    """A DCE phase (or another required channel) was not supplied."""


class GeometryMismatchError(ResponseAIError):
    """Images that must share a voxel grid do not; the message lists each differing field."""


class InvalidImageError(ResponseAIError):
    """An image has the wrong dimensionality or non-finite voxels."""


class EmptyMaskError(ResponseAIError):
    """A tumour mask has no foreground voxel (or covers everything)."""


class MissingSegmentError(ResponseAIError):
    """No tumour segment was given, or none can be told apart from the others (say which to name)."""


class AnatomyNotFoundError(ResponseAIError):
    """The anatomy a model needs (both breasts, a body) is not in the image; say what was looked for."""


class ClinicalValueError(ResponseAIError):
    """A clinical variable is out of range or an unknown category."""


class WeightsError(ResponseAIError):
    """Model weights are missing, truncated, corrupt or do not match their model card."""
