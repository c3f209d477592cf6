"""Collapsible analysis panels of BreastResponseAI (Qt widgets; their MRML + core logic is in the Lib).

Each file holds one ``ResponseAISection`` subclass; ``BreastResponseAIWidget.sections`` lists them.
"""
