"""Training-speed aids of the GPU recipe (not in the paper): colour jitter on the model's device and
training images decoded once into memory. Each must give what the plain path gives."""

import numpy as np
import pytest
import torch

from foss_d2.data.augmentation import apply_color_jitter, draw_color_jitter
from foss_d2.data.cache import DecodedImageCache
from foss_d2.utils.image_io import read_image_file

from detectron2.data import transforms as T


def test_colour_jitter_on_device_equals_detectron2s_three_blends():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    for seed in range(5):
        # detectron2's augmentations, as the mapper runs them without COLOR_ON_DEVICE
        np.random.seed(seed)
        aug = T.AugInput(image.copy())
        T.AugmentationList([T.RandomBrightness(0.8, 1.2), T.RandomContrast(0.8, 1.2), T.RandomSaturation(0.8, 1.2)])(
            aug
        )
        # the same random draws, applied to the tensor on the model's side
        np.random.seed(seed)
        factors = draw_color_jitter(0.2)
        ours = apply_color_jitter(torch.from_numpy(image.transpose(2, 0, 1).copy()), factors).numpy().transpose(1, 2, 0)
        diff = np.abs(ours.astype(int) - aug.image.astype(int))
        # float32 here, float64 in places there: a truncation may land one level apart, rarely
        assert diff.max() <= 1 and (diff > 0).mean() < 0.01, (seed, diff.max(), (diff > 0).mean())


def test_colour_jitter_by_hand():
    img = torch.tensor([[[100, 200]], [[50, 250]], [[0, 10]]], dtype=torch.uint8)  # 3 channels, 1x2 pixels
    # brightness x1.5: 150 300->255 | 75 375->255 | 0 15; contrast 1.0 and saturation 1.0 leave it
    out = apply_color_jitter(img, [1.5, 1.0, 1.0])
    assert out[:, 0, :].tolist() == [[150, 255], [75, 255], [0, 15]]
    # saturation 0: every channel becomes the grey 0.299 c0 + 0.587 c1 + 0.114 c2, truncated
    out = apply_color_jitter(img, [1.0, 1.0, 0.0])
    g0, g1 = int(0.299 * 100 + 0.587 * 50), int(0.299 * 200 + 0.587 * 250 + 0.114 * 10)
    assert out[:, 0, 0].tolist() == [g0] * 3 and out[:, 0, 1].tolist() == [g1] * 3


def test_decoded_cache_gives_the_files_pixels_and_copies(tmp_path):
    import cv2

    paths = []
    for i in range(3):
        p = str(tmp_path / f"{i}.jpg")
        cv2.imwrite(p, np.full((20 + i, 30, 3), 40 * i, np.uint8))
        paths.append(p)
    records = [{"file_name": p} for p in paths] + [{"file_name": str(tmp_path / "missing.jpg")}]
    cache = DecodedImageCache.build(records, "BGR", num_threads=2)
    assert sorted(cache.images) == sorted(paths)  # the missing file is left to the mapper
    for p in paths:
        got = cache({"file_name": p})
        assert np.array_equal(got, read_image_file(p, "BGR"))
        got[:] = 0  # a caller writing into its copy does not touch the cache
        assert np.array_equal(cache({"file_name": p}), read_image_file(p, "BGR"))


def test_mapper_hands_the_jitter_to_the_model_and_the_model_applies_it(tmp_path):
    import cv2
    from conftest import tiny_cfg

    from foss_d2.data import FOSSDatasetMapper

    from detectron2.modeling import build_model
    from detectron2.structures import BoxMode

    path = str(tmp_path / "face.png")
    cv2.imwrite(path, np.random.default_rng(1).integers(0, 255, (90, 80, 3), dtype=np.uint8))
    anno = {"bbox": [10.0, 10.0, 60.0, 70.0], "bbox_mode": BoxMode.XYXY_ABS, "category_id": 0, "age": 30.0, "gender": 1}
    record = {"file_name": path, "image_id": 0, "height": 90, "width": 80, "annotations": [anno]}
    off = FOSSDatasetMapper(tiny_cfg(**{"INPUT.AUG.COLOR_JITTER": 0.0}), True)
    on = FOSSDatasetMapper(tiny_cfg(**{"INPUT.AUG.COLOR_ON_DEVICE": True}), True)
    np.random.seed(3)
    d_off = off(record)
    np.random.seed(3)
    d_on = on(record)
    # the loader's picture is the one without colour jitter; the factors travel beside it
    assert torch.equal(d_on["image"], d_off["image"]) and "color_jitter" not in d_off
    assert len(d_on["color_jitter"]) == 3 and all(0.8 <= f <= 1.2 for f in d_on["color_jitter"])

    torch.manual_seed(0)
    model = build_model(tiny_cfg(**{"MODEL.FOSS.FREEZE_DETECTOR": False, "MODEL.FOSS.ADD_GT_BOXES": True}))
    model.train()
    seen = []

    class Seen(Exception):
        pass

    def stop_at_the_detector(images, size=None):
        seen.append(images[0].clone())
        raise Seen  # only the picture the model received matters here

    model.preprocess_detector = stop_at_the_detector
    with pytest.raises(Seen):
        model([dict(d_on)])
    assert torch.equal(seen[0], apply_color_jitter(d_on["image"], d_on["color_jitter"]))
