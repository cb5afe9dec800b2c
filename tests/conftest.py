"""Shared fixtures: synthetic volumes made in code, and the optional real data folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MEDSEG_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data folder beside the checkout; tests using it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (set MEDSEG_SHARED_DATA to point at it)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def phantom_package():
    """The shipped phantom model package."""
    from medseg.package import load_package

    return load_package("phantom")


@pytest.fixture(scope="session")
def phantom_segmenter(phantom_package):
    from medseg.inference import Segmenter

    return Segmenter(phantom_package, device="cpu", batch_size=8)
