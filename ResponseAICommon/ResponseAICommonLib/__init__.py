"""Slicer-side library shared by the ResponseAI modules (Qt and the Slicer app; see ResponseAICommon.py)."""
