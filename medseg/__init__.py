"""medseg: batch segmentation of medical volumes with slice-wise 2D U-Nets on MONAI."""

__version__ = "0.1.0"

__all__ = ["__version__"]
