"""The plain Python API: ``FaceAgeEstimator()(image)`` -> list of faces, with the shipped model."""

import logging
import math
import os
import warnings
from typing import Iterable, Iterator, List, NamedTuple, Optional, Sequence

import numpy as np
import torch
from PIL import Image

from ..config import checked_opts, get_foss_cfg
from ..model_zoo import DEFAULT_CONFIG, DEFAULT_WEIGHTS  # noqa: F401  (re-exported)
from ..utils.image_io import DEFAULT_MAX_PIXELS, swap_red_blue
from ..utils.visualizer import DEFAULT_DRAW_MAX_SIDE, draw_predictions
from .predictor import FOSSPredictor, load_image

logger = logging.getLogger("foss_d2.api")

# Not in the paper: the shipped weights with the test-time work that costs most and helps least
# on CPU left out: one detector pass, no mirror average, and a photo smaller than the detector
# input read at its own size instead of upscaled (since 2026-12-05 the shipped config itself runs
# one pass at its own size, so "fast" is the shipped one without the mirror), and the age network
# and the detector's backbone and heatmap head in bfloat16 where the CPU does it natively
# (AVX512-BF16, AMX); docs/RESULTS.md has its accuracy and time beside the shipped settings and
# the peer.
# "accurate": the shipped config with a second detector pass at 800 px on photos over 512 px (the
# small faces of crowds and group photos; photos up to 512 px unchanged): on WIDER val 66% of the
# faces found against 53%, for about 3x the time of a group photo (docs/RESULTS.md sections 1
# and 2).
PRESETS = {
    "shipped": [],
    "accurate": ["MODEL.FOSS.TEST_SIZES", "[800]"],
    "fast": [
        "MODEL.FOSS.TEST_SIZES",
        "[]",
        "MODEL.AGE_HEAD.TEST_FLIP",
        "False",
        "MODEL.FOSS.DET_INPUT_FIT_SMALL",
        "True",
        "MODEL.AGE_HEAD.INFERENCE_DTYPE",
        "bfloat16",
        "MODEL.FOSS.DET_INFERENCE_DTYPE",
        "bfloat16",
    ],
}


def instances_to_faces(inst) -> List[dict]:
    """detectron2 Instances -> [{"box", "score", "age", "age_std", "gender", "p_female"}] (JSON-ready)."""
    inst = inst.to("cpu")
    boxes = inst.pred_boxes.tensor.tolist()
    faces = []
    for i, box in enumerate(boxes):
        p_female = float(inst.pred_female_probs[i]) if inst.has("pred_female_probs") else float("nan")
        faces.append(
            {
                "box": [round(float(v), 2) for v in box],
                "score": round(float(inst.scores[i]), 4),
                "age": round(float(inst.pred_ages[i]), 2) if inst.has("pred_ages") else None,
                "age_std": round(float(inst.pred_age_stds[i]), 2) if inst.has("pred_age_stds") else None,
                "gender": None if np.isnan(p_female) else ("female" if p_female > 0.5 else "male"),
                "p_female": None if np.isnan(p_female) else round(p_female, 4),
            }
        )
    return faces


class FaceResult(NamedTuple):
    """One image's answer from ``FaceAgeEstimator.map``: its place among the inputs, its path (None
    for an array or a PIL image), its faces (as ``FaceAgeEstimator()(image)`` gives them; None when
    it could not be read or run) and why not (None when it was)."""

    index: int
    path: Optional[str]
    faces: Optional[List[dict]]
    error: Optional[str]


def check_faces(faces, image_hw):
    """A TypeError unless ``faces`` is a list, a ValueError unless each is a face dict with a
    four-number ``box``; a warning when boxes lie wholly outside the image (another image's answers?)."""
    if isinstance(faces, dict) or not isinstance(faces, (list, tuple)):
        raise TypeError(f"faces is a list of face dicts (what the estimator returns), got {type(faces).__name__}")
    h, w = image_hw
    outside = 0
    for i, f in enumerate(faces):
        box = f.get("box") if isinstance(f, dict) else None
        if box is None or len(box) != 4:
            raise ValueError(f"faces[{i}] has no box [x1, y1, x2, y2]: {f!r}")
        numbers = [v for v in box if isinstance(v, (int, float, np.number)) and not isinstance(v, bool)]
        if len(numbers) != 4 or not all(math.isfinite(v) for v in numbers):
            raise ValueError(f"faces[{i}]'s box is not four finite numbers [x1, y1, x2, y2]: {box!r}")
        for key in ("score", "age"):  # what the picture's labels and line styles read
            v = f.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float, np.number))):
                raise ValueError(f"faces[{i}]'s {key} is not a number: {v!r}")
        if f.get("gender") is not None and not isinstance(f["gender"], str):
            raise ValueError(f"faces[{i}]'s gender is not 'female' or 'male': {f['gender']!r}")
        x1, y1, x2, y2 = (float(v) for v in numbers)
        outside += x1 >= w or y1 >= h or x2 <= 0 or y2 <= 0
    if outside:
        warnings.warn(
            f"{outside} of the {len(faces)} faces' boxes lie outside this {w}x{h} image: the answers of another image?",
            stacklevel=3,
        )


class FaceAgeEstimator:
    """Finds every face in an image and estimates its age and gender.

    >>> est = FaceAgeEstimator()            # the shipped model, on GPU when there is one
    >>> est("photo.jpg")                    # or a numpy array (BGR by default) or a PIL image
    [{"box": [x1, y1, x2, y2], "score": 0.93, "age": 31.2, "age_std": 6.1, "gender": "female", "p_female": 0.88}]
    >>> FaceAgeEstimator(preset="fast", backend="onnxruntime")  # faster on CPU (README, "Fast on CPU")
    >>> cv2.imwrite("drawn.jpg", est.draw("photo.jpg"))  # the picture as the demo draws it

    ``preset``: "shipped", "accurate" or "fast" (``PRESETS``: config overrides applied before ``opts``);
    ``backend``: "pytorch" or "onnxruntime" (``FOSSPredictor``); ``onnx_dir``: the onnxruntime
    graphs to run, e.g. int8 ones from ``foss-d2 export --format onnx --int8``; ``max_pixels``: image
    files over this many pixels are refused before decoding (None or 0: no limit).
    """

    def __init__(
        self,
        config_file: Optional[str] = None,
        weights: Optional[str] = None,
        device: Optional[str] = None,
        confidence_threshold: Optional[float] = None,
        opts: Sequence[str] = (),
        backend: str = "pytorch",
        preset: str = "shipped",
        onnx_dir: Optional[str] = None,
        max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
    ):
        if preset not in PRESETS:
            raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {preset!r}")
        if backend == "onnxruntime" and device is None:
            device = "cpu"
        # device None: add_foss_config's default, CUDA when available. opts: config KEY VALUE pairs.
        opts = [*PRESETS[preset], *checked_opts(opts)]
        self.cfg = get_foss_cfg(
            config_file, weights, opts, device=device, confidence_threshold=confidence_threshold, need_weights=True
        )
        self.predictor = FOSSPredictor(self.cfg, backend=backend, onnx_dir=onnx_dir)
        self.max_pixels = max_pixels

    def to_array(self, image, channel_order: str = "BGR") -> np.ndarray:
        """Any accepted input as an HxWx3 uint8 array in the model's channel order."""
        fmt = self.cfg.INPUT.FORMAT
        if channel_order not in ("BGR", "RGB"):  # for arrays, and a slip to say for files too
            raise ValueError(f"channel_order must be BGR or RGB, got {channel_order!r}")
        if isinstance(image, Image.Image):  # the same decoding as a file: EXIF orientation, 16-bit, the limit
            return load_image(image, fmt, self.max_pixels)
        if isinstance(image, np.ndarray):
            arr = load_image(image, channel_order)
            return swap_red_blue(arr) if channel_order != fmt else arr
        return load_image(image, fmt, self.max_pixels)

    def __call__(self, image, channel_order: str = "BGR") -> List[dict]:
        return instances_to_faces(self.predictor(self.to_array(image, channel_order)))

    def map(
        self,
        images: Iterable,
        channel_order: str = "BGR",
        workers: Optional[int] = None,
        progress: bool = False,
    ) -> Iterator[FaceResult]:
        """The faces of many images, one ``FaceResult`` each, in input order, as the demo runs a
        folder: the next images decoded in a thread while the model runs, and on CPU ``workers``
        images in the model at once, the threads shared among them (default: one per thread,
        which does the most photos a second on 2 cores; with onnxruntime, sessions opened on
        that share the first time). An image that cannot be read or run is logged and comes back
        with its ``error``; the others go on. ``images``: any iterable (a generator too) of what
        ``__call__`` takes; ``progress``: a tqdm bar."""
        if channel_order not in ("BGR", "RGB"):  # said here, not at the first image
            raise ValueError(f"channel_order must be BGR or RGB, got {channel_order!r}")
        if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool) or workers < 1):
            raise ValueError(f"workers is a number of images in the model at once (1 or more), got {workers!r}")
        from .pipeline import runs_on_cpu  # (pipeline imports this module)

        threads = torch.get_num_threads()
        workers = workers or (threads if runs_on_cpu(self.predictor) else 1)
        predictor = self.predictor
        if predictor.backend == "onnxruntime" and workers > 1:
            predictor = self._sessions_of(max(1, threads // workers))
        total = len(images) if hasattr(images, "__len__") else None
        return self._map(predictor, iter(images), channel_order, workers, total, progress)

    def _sessions_of(self, threads: int) -> FOSSPredictor:
        """The onnxruntime predictor whose sessions run on ``threads`` threads, opened once: a
        session keeps the thread count it was opened with. On 2 cores two photos at once on
        one-thread sessions did 1.15x (group photos) and 1.51x (close-ups) the photos/s of a loop
        over the estimator's own two-thread sessions (RESULTS.md section 2, "From Python")."""
        cache = self.__dict__.setdefault("_predictors_by_threads", {})
        if threads not in cache:
            onnx_dir = self.predictor.onnx_dir  # (None: the cache folder the estimator's own graphs are in)
            cache[threads] = FOSSPredictor(self.cfg, backend="onnxruntime", onnx_dir=onnx_dir, threads=threads)
        return cache[threads]

    def _map(self, predictor, images, channel_order, workers, total, progress):
        """``map``'s generator."""
        from tqdm import tqdm

        from .pipeline import Prefetcher, predict_in_order  # (pipeline imports this module)

        def decoded():
            for i, image in enumerate(images):
                path = os.fspath(image) if isinstance(image, (str, os.PathLike)) else None
                try:
                    yield (i, path), self.to_array(image, channel_order), None
                except Exception as e:  # noqa: BLE001  (one bad input must not end the batch)
                    logger.warning("skipping input %d%s: %s", i, f" ({path})" if path else "", e)
                    yield (i, path), None, e

        reader = Prefetcher(decoded, 1 + workers)
        results = predict_in_order(predictor, reader, workers)  # (it shares PyTorch's threads among the workers)
        try:
            for (i, path), _, error, faces in tqdm(results, total=total, desc="images", disable=not progress):
                yield FaceResult(i, path, faces, None if error is None else str(error))
        finally:
            results.close()
            reader.close()

    def draw(
        self,
        image,
        faces: Optional[List[dict]] = None,
        channel_order: str = "BGR",
        max_side: Optional[int] = DEFAULT_DRAW_MAX_SIDE,
    ) -> np.ndarray:
        """The picture as the demo draws it (detectron2's Visualizer: each face boxed in its gender's
        colour and labelled "age, gender", dashed when scored under 0.4), in ``channel_order``
        (BGR: ready for ``cv2.imwrite``), shrunk to ``max_side`` on its longer side when larger
        (None: full size); ``faces``: this estimator's answers for the image (boxes in its pixels),
        found here when not given."""
        if max_side is not None and max_side < 0:
            raise ValueError(f"max_side is a side in pixels (None or 0: full size), got {max_side}")
        arr = self.to_array(image, channel_order)
        if faces is None:
            faces = instances_to_faces(self.predictor(arr))
        else:
            check_faces(faces, arr.shape[:2])
        bgr = arr if self.cfg.INPUT.FORMAT == "BGR" else swap_red_blue(arr)
        drawn = draw_predictions(bgr, faces, max_side)
        return drawn if channel_order == "BGR" else swap_red_blue(drawn)
