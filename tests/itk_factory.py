"""Helpers of the NRRD and MetaImage tests: the SimpleITK fixture, an oblique grid of anisotropic voxels and the
voxels and labels written on it."""

from __future__ import annotations

import math

import numpy as np
import pytest

ITK_FORMATS = [".nrrd", ".nhdr", ".mha", ".mhd"]


@pytest.fixture(name="sitk")
def simpleitk():
    return pytest.importorskip("SimpleITK", reason="SimpleITK (medseg's itk extra) is not installed")


def _oblique(sitk, array: np.ndarray):
    """``array`` (numpy's order: k, j, i) as a SimpleITK image on an oblique grid of anisotropic voxels."""
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.7, 1.3, 2.5))
    image.SetOrigin((12.5, -40.25, 7.0))
    a, b = 0.3, -0.2  # about z, then about x: no axis of the grid along a world axis
    rz = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    image.SetDirection(tuple((rz @ rx).ravel()))
    return image


def _values(dtype: str) -> np.ndarray:
    rng = np.random.default_rng(5)
    if dtype == "float32":
        return rng.normal(100, 40, (6, 9, 11)).astype(np.float32)
    info = np.iinfo(dtype)
    return rng.integers(max(info.min, -2000), min(info.max, 3000), (6, 9, 11)).astype(dtype)


def _labels() -> np.ndarray:
    labels = np.zeros((6, 9, 11), np.uint8)
    labels[1:4, 2:6, 3:8] = 1
    labels[4:6, 5:8, 6:10] = 2
    return labels
