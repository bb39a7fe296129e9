#!/usr/bin/env python
"""FOSS-D2: multi-person age and gender estimation as a detectron2 extension.

detectron2 itself is not listed in install_requires: no installable package of it exists on PyPI.
`install.sh` builds it first (see docs/INSTALL.md).
"""

from setuptools import find_packages, setup

setup(
    name="foss_d2",
    version="0.1.0",
    description="FOSS (Yoshimura & Ogata): one model that detects faces and estimates age and gender, on detectron2",
    packages=find_packages(exclude=("tests", "tests.*", "configs", "tools", "tools.*", "datasets", "detectron2_stub")),
    python_requires=">=3.10",  # torch 2.14; the [onnx] extra (onnxruntime 1.30) needs 3.11
    install_requires=[
        "torch>=2.0",
        "torchvision",
        "fvcore",
        "iopath",
        "opencv-python-headless>=4.5,<5",
        "pycocotools",
        "timm>=1.0,<1.1",
        "numpy",
        "Pillow>=9,<10",
        "tqdm",
        "matplotlib",
        "scipy",
    ],
    extras_require={
        "dev": ["pytest", "pytest-timeout", "ruff==0.17.6"],
        # FaceAgeEstimator(backend="onnxruntime"), tools/demo.py --backend onnxruntime, export --format onnx
        "onnx": ["onnxruntime==1.30.0", "onnx==1.23.2"],
        # faces tracked across video frames, one answer per person (apps/tracking.py, docs/DESIGN.md)
        "video": ["norfair-enough==2.4.3"],
    },
    # The shipped model and its config travel with the package (docs/MODEL_ZOO.md).
    package_data={"foss_d2": ["model_zoo/*.yaml", "model_zoo/*.pth"]},
    # foss-d2 demo | survey | train | evaluate | benchmark | export: the commands of tools/, installed
    entry_points={"console_scripts": ["foss-d2 = foss_d2.apps.cli:main"]},
)
