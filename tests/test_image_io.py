"""One image-loading path: files, PIL images and arrays give the same pixels (EXIF, 16-bit, size limit)."""

import os

import numpy as np
import pytest
from PIL import Image

from foss_d2.utils.image_io import ImageTooLargeError, load_image, read_image_file, swap_red_blue

DEMO = os.path.join(os.path.dirname(__file__), "..", "demo", "family.jpg")


def _sideways_with_exif(path_out):
    """demo/family.jpg stored rotated, with EXIF orientation 6 ("rotate 90 CW to display") to undo it."""
    upright = Image.open(DEMO).convert("RGB")
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # 90 CCW: what a sideways camera writes
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(path_out, quality=95, exif=exif)
    return upright


def test_exif_orientation_is_applied_for_paths_and_pil_images_alike(tmp_path):
    path = str(tmp_path / "sideways.jpg")
    upright = _sideways_with_exif(path)
    from_path = load_image(path, "RGB")
    from_pil = load_image(Image.open(path), "RGB")
    assert from_path.shape == (upright.height, upright.width, 3)  # displayed frame, not the stored one
    assert np.array_equal(from_path, from_pil)
    # and it is the upright picture (JPEG noise aside)
    assert np.abs(from_path.astype(int) - np.asarray(upright).astype(int)).mean() < 3


def test_sixteen_bit_grey_pil_image_is_scaled_like_the_file(tmp_path):
    ramp = (np.arange(64 * 48, dtype=np.uint32).reshape(48, 64) * 21).astype(np.uint16)  # up to 64,491
    im = Image.fromarray(ramp)
    assert im.mode.startswith("I;16")
    path = str(tmp_path / "ramp16.png")
    im.save(path)
    from_pil, from_path = load_image(im, "BGR"), read_image_file(path, "BGR")
    assert np.array_equal(from_pil, from_path)
    # 16-bit values are scaled by 1/257: 64,491 -> 251, grey replicated to three channels
    assert from_pil[-1, -1].tolist() == [251, 251, 251] and from_pil[0, 0].tolist() == [0, 0, 0]
    # the old API path, Image.convert("RGB"), clipped everything above 255 to white
    assert (np.asarray(im.convert("RGB")) == 255).mean() > 0.9
    # the same values big-endian (FITS, np.frombuffer(..., ">u2")) were refused as "not uint16"
    assert np.array_equal(load_image(ramp.astype(">u2"), "BGR"), from_pil)


def test_oversized_picture_is_refused_before_decoding_with_its_size(tmp_path):
    path = str(tmp_path / "huge.png")
    Image.new("L", (20000, 10000)).save(path)  # 200 MP: over PIL's own bomb limit too
    with pytest.raises(ImageTooLargeError) as e:
        read_image_file(path)
    assert e.value.size == (20000, 10000)
    assert "20000x10000" in str(e.value) and "huge.png" in str(e.value)
    small = str(tmp_path / "small.png")
    Image.new("RGB", (300, 200)).save(small)
    with pytest.raises(ImageTooLargeError, match="300x200"):
        read_image_file(small, max_pixels=50_000)
    assert read_image_file(small, max_pixels=60_000).shape == (200, 300, 3)


def test_max_pixels_alone_decides_not_pils_own_bomb_limit(tmp_path, monkeypatch, recwarn):
    """--max-pixels raised over PIL's decompression-bomb limit (or 0: none) reads the picture; a
    refusal names the limit that was applied. PIL's limit made small here: 1,000 pixels warned,
    2,000 refused, against a 300x200 picture."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    small = str(tmp_path / "small.png")
    Image.new("RGB", (300, 200), (10, 20, 30)).save(small)
    with pytest.raises(Image.DecompressionBombError):
        Image.open(small)  # what PIL alone does with it
    for limit in (60_000, 0, None):
        arr = read_image_file(small, max_pixels=limit)
        assert arr.shape == (200, 300, 3) and arr[0, 0].tolist() == [30, 20, 10]
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]
    with pytest.raises(ImageTooLargeError, match=r"over the limit of 0\.05 MP"):
        read_image_file(small, max_pixels=50_000)
    assert Image.MAX_IMAGE_PIXELS == 1000  # PIL's setting is left as it was


def test_shipped_model_same_faces_from_a_path_and_from_a_pil_image(tmp_path):
    from foss_d2 import FaceAgeEstimator

    path = str(tmp_path / "sideways.jpg")
    _sideways_with_exif(path)
    est = FaceAgeEstimator(device="cpu", opts=["MODEL.FOSS.TEST_SIZES", "[]"])
    by_path, by_pil = est(path), est(Image.open(path))
    assert len(by_path) > 0 and by_path == by_pil
    # boxes are in the displayed (upright) frame: they match the upright original's faces
    upright = est(DEMO)
    assert len(upright) == len(by_path)
    for a, b in zip(upright, by_path):
        assert np.abs(np.array(a["box"]) - np.array(b["box"])).max() < 6.0


def test_sixteen_bit_data_that_is_eight_bit_or_twelve_bit(tmp_path, recwarn):
    grey = np.array([[0, 17, 200, 255]], np.uint8)
    # PIL's 32-bit mode I holding 0..255 (Image.convert("I") of an 8-bit picture) is kept, not divided by 257
    assert load_image(Image.fromarray(grey).convert("I"), "RGB")[0, :, 0].tolist() == [0, 17, 200, 255]
    # 12-bit data read as 16-bit: 4080 / 257 = 15.9 -> 16, almost black, and said so
    twelve = grey.astype(np.uint16) * 16
    assert load_image(twelve, "RGB")[0, :, 0].tolist() == [0, 1, 12, 16]
    assert any("almost black" in str(w.message) and "4080 of 65535" in str(w.message) for w in recwarn)
    recwarn.clear()
    # full 16-bit range: scaled, no warning
    assert load_image(grey.astype(np.uint16) * 257, "RGB")[0, :, 0].tolist() == [0, 17, 200, 255]
    assert not [w for w in recwarn if "almost black" in str(w.message)]


def test_float_and_closed_pil_images_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="a float image \\(PIL mode F\\)"):
        load_image(Image.fromarray(np.full((8, 8), 0.5, np.float32)))
    path = str(tmp_path / "a.png")
    Image.new("RGB", (8, 8)).save(path)
    with Image.open(path) as im:
        pass
    with pytest.raises(ValueError, match="cannot read the PIL image .*is it closed"):
        load_image(im)
    im = Image.open(path)
    im.close()  # closed outright: Pillow's own ValueError, named the same way
    with pytest.raises(ValueError, match="cannot read the PIL image .*it was closed; pass it open, or its path"):
        load_image(im)


def test_bgr_is_the_rgb_picture_with_red_and_blue_swapped():
    """The BGR the model reads is the decoded RGB with channels 0 and 2 exchanged, as a new array
    (OpenCV's conversion for 8-bit pictures; numpy for others, an alpha channel kept in place)."""
    rgb, bgr = read_image_file(DEMO, "RGB"), read_image_file(DEMO, "BGR")
    assert (bgr[:, :, 0] == rgb[:, :, 2]).all() and (bgr[:, :, 1] == rgb[:, :, 1]).all()
    assert (bgr[:, :, 2] == rgb[:, :, 0]).all() and (bgr != rgb).any()
    swapped = swap_red_blue(rgb)
    assert swapped.flags.c_contiguous and not np.shares_memory(swapped, rgb) and (swapped == bgr).all()
    assert swap_red_blue(rgb[::2, ::3]).tolist() == rgb[::2, ::3, ::-1].tolist()  # a strided view too
    wide = np.arange(2 * 3 * 3, dtype=np.uint16).reshape(2, 3, 3) * 1000
    assert swap_red_blue(wide).tolist() == wide[:, :, ::-1].tolist() and swap_red_blue(wide).flags.c_contiguous
    bgra = np.dstack([bgr[:4, :5], np.full((4, 5), 7, np.uint8)])
    assert swap_red_blue(bgra).tolist() == np.dstack([rgb[:4, :5], np.full((4, 5), 7, np.uint8)]).tolist()
    one = rgb[:4, :5, :1]
    assert (swap_red_blue(one) == one).all() and not np.shares_memory(swap_red_blue(one), one)
    assert swap_red_blue(np.zeros((0, 5, 3), np.uint8)).shape == (0, 5, 3)
