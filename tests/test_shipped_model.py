"""The model shipped in foss_d2/model_zoo, on the demo picture shipped in demo/ (README quickstart)."""
import os

import pytest

from foss_d2 import FaceAgeEstimator
from foss_d2.engine.api import DEFAULT_WEIGHTS

ROOT = os.path.join(os.path.dirname(__file__), "..")
DEMO = os.path.join(ROOT, "demo", "family.jpg")


@pytest.fixture(scope="module")
def estimator():
    assert os.path.isfile(DEFAULT_WEIGHTS), "the shipped model is missing from foss_d2/model_zoo"
    assert os.path.getsize(DEFAULT_WEIGHTS) < 60 * 2**20
    return FaceAgeEstimator(device="cpu")


def test_shipped_model_runs_on_demo_picture(estimator):
    faces = estimator(DEMO)
    for f in faces:
        x1, y1, x2, y2 = f["box"]
        assert 0 <= x1 < x2 <= 1024 and 0 <= y1 < y2 <= 1281
        assert f["score"] > 0.2 and 0 <= f["age"] <= 100 and 0 <= f["p_female"] <= 1
    low = FaceAgeEstimator(device="cpu", confidence_threshold=0.01)(DEMO)
    assert len(low) >= len(faces)  # a lower threshold never loses faces
