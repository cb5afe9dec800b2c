"""medseg: batch segmentation of medical volumes with slice-wise 2D U-Nets on MONAI."""

import logging

__version__ = "0.1.0"

__all__ = ["__version__"]

# a library's loggers write nothing until the program configures logging: without a handler of its own, Python's
# last-resort handler wrote each warning to stderr of a notebook or pipeline that had not asked for it
logging.getLogger(__name__).addHandler(logging.NullHandler())
