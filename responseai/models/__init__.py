"""Neural networks of the product (pure PyTorch/MONAI, no Qt, no Slicer).

Each model module owns its architecture *and* the preprocessing contract of its inputs, so
training and inference cannot drift apart: both call the same functions.
"""
