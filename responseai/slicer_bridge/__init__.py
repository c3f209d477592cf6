"""The MRML bridge shared by both Slicer modules (imports ``slicer``, never Qt)."""
