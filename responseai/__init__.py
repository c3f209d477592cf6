"""ResponseAI core: multimodal oncology response models, usable without Qt or the Slicer app."""

__version__ = "0.1.0"
