"""ONNX graph folders are published whole or not at all: an export (float or int8) writes its graphs
and their fingerprint into a staging folder beside the target and moves them in at the end, the old
fingerprint removed first and the new one moved in last; an export that fails or is interrupted
leaves the folder as it was; two exports of one folder at once (two runs filling one cache) each
publish a whole set; a folder without its fingerprint is refused; atomic_path gives every writer
a temporary file of its own; an output under a file is a one-line error."""

import contextlib
import copy
import os
import threading

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from foss_d2.utils.json_io import atomic_path, write_text_atomic

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAMILY = os.path.join(REPO, "demo", "family.jpg")


@pytest.fixture(scope="module")
def loaded_model(shipped_cfg):
    """The shipped model as loaded (each test exports a copy: the export folds its BatchNorms)."""
    from foss_d2.engine.predictor import load_model

    return load_model(shipped_cfg)


def folder_bytes(folder):
    return {name: open(os.path.join(folder, name), "rb").read() for name in sorted(os.listdir(folder))}


def old_folder(path):
    """A folder of graphs of an earlier export (their bytes stand for other weights' graphs)."""
    from foss_d2.engine.onnx_backend import AGE_NET_FILE, DETECTOR_FILE, FINGERPRINT_FILE

    os.makedirs(path)
    for name, data in ((DETECTOR_FILE, b"old detector"), (AGE_NET_FILE, b"old age net"), (FINGERPRINT_FILE, b"0ld\n")):
        with open(os.path.join(path, name), "wb") as f:
            f.write(data)
    return folder_bytes(path)


def fake_exporter(fail_on=None, exc=RuntimeError, barrier=None):
    """Stands in for ``torch.onnx.export`` (seconds saved): writes the file name as the graph; raises
    ``exc`` for the graph named ``fail_on`` (after writing part of it); waits at ``barrier``."""

    from foss_d2.engine.onnx_backend import AGE_NET_FILE, DETECTOR_FILE

    def export(module, inputs, path, **kwargs):
        name = DETECTOR_FILE if DETECTOR_FILE in os.path.basename(path) else AGE_NET_FILE
        with open(path, "wb") as f:
            f.write(b"new " + name.encode())
        if barrier is not None:
            barrier.wait()
        if fail_on and fail_on in name:
            raise exc(f"stopped while writing {name}")

    return export


# ---------------------------------------------------------------- atomic_path


def test_atomic_path_gives_each_writer_a_temporary_file_of_its_own(tmp_path):
    """Two writers of one path at once (two runs exporting one cache) both succeed, the last to finish
    wins; a block that fails leaves the old file and no temporary one."""
    path = tmp_path / "graph.onnx"
    with contextlib.ExitStack() as stack:
        first = stack.enter_context(atomic_path(str(path)))
        second = stack.enter_context(atomic_path(str(path)))
        assert first != second
        open(first, "w").write("first")
        open(second, "w").write("second")
    assert path.read_text() == "first" and os.listdir(tmp_path) == ["graph.onnx"]

    barrier = threading.Barrier(6, timeout=30)
    errors = []

    def writer(i):
        try:
            with atomic_path(str(path)) as tmp:
                open(tmp, "w").write(f"writer {i}")
                barrier.wait()  # every writer's temporary file written before any is renamed
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and path.read_text().startswith("writer ") and os.listdir(tmp_path) == ["graph.onnx"]

    before = path.read_text()
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(str(path)) as tmp:
            open(tmp, "w").write("half")
            raise KeyboardInterrupt
    assert path.read_text() == before and os.listdir(tmp_path) == ["graph.onnx"]
    write_text_atomic(str(path), "text")
    assert path.read_text() == "text" and os.listdir(tmp_path) == ["graph.onnx"]


# ---------------------------------------------------------------- float export


def test_interrupted_reexport_leaves_the_folder_as_it_was(loaded_model, shipped_cfg, tmp_path, monkeypatch):
    """A re-export stopped after its first graph (Ctrl-C, or an error) leaves the old graphs and the
    old fingerprint byte for byte, and no staging folder: before, the new detector lay beside the
    old age network under the old fingerprint, and runs trusted them (91 faces instead of 8)."""
    from foss_d2.apps.export import main as export_main
    from foss_d2.engine.onnx_backend import AGE_NET_FILE, export_onnx

    out = tmp_path / "graphs"
    before = old_folder(out)
    monkeypatch.setattr(torch.onnx, "export", fake_exporter(AGE_NET_FILE, KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        export_onnx(copy.deepcopy(loaded_model), str(out))
    assert folder_bytes(out) == before
    assert os.listdir(tmp_path) == ["graphs"]

    monkeypatch.setattr(torch.onnx, "export", fake_exporter(AGE_NET_FILE, RuntimeError))
    with pytest.raises(RuntimeError, match="stopped while writing age_net.onnx"):
        export_main([shipped_cfg.MODEL.WEIGHTS, str(out), "--format", "onnx"])
    assert folder_bytes(out) == before
    with pytest.raises(RuntimeError):  # a fresh folder (and the folders above it) is not made
        export_main([shipped_cfg.MODEL.WEIGHTS, str(tmp_path / "new" / "graphs"), "--format", "onnx"])
    assert os.listdir(tmp_path) == ["graphs"]


def test_reexport_removes_the_old_fingerprint_first_and_writes_the_new_one_last(loaded_model, tmp_path, monkeypatch):
    """A publication cut short between its graphs leaves a folder without a fingerprint, which is
    refused; one that ends replaces every file, the fingerprint the new weights'."""
    from foss_d2.engine.onnx_backend import (
        AGE_NET_FILE,
        DETECTOR_FILE,
        FINGERPRINT_FILE,
        check_fingerprint,
        export_onnx,
        weights_fingerprint,
    )

    fingerprint = weights_fingerprint(loaded_model)
    monkeypatch.setattr(torch.onnx, "export", fake_exporter())
    out = tmp_path / "graphs"
    old_folder(out)
    paths = export_onnx(copy.deepcopy(loaded_model), str(out))
    assert paths == {"detector": str(out / DETECTOR_FILE), "age_net": str(out / AGE_NET_FILE)}
    assert folder_bytes(out) == {
        AGE_NET_FILE: b"new age_net.onnx",
        DETECTOR_FILE: b"new detector.onnx",
        FINGERPRINT_FILE: (fingerprint + "\n").encode(),
    }
    assert check_fingerprint(str(out), fingerprint) and os.listdir(tmp_path) == ["graphs"]

    old_folder(tmp_path / "cut")
    replace = os.replace

    def cut_short(src, dst):
        if os.path.basename(dst) == AGE_NET_FILE:
            raise OSError("disk gone")
        replace(src, dst)

    monkeypatch.setattr(os, "replace", cut_short)
    with pytest.raises(OSError, match="disk gone"):
        export_onnx(copy.deepcopy(loaded_model), str(tmp_path / "cut"))
    monkeypatch.setattr(os, "replace", replace)
    left = folder_bytes(tmp_path / "cut")
    assert FINGERPRINT_FILE not in left and left[AGE_NET_FILE] == b"old age net"  # mixed, and says so
    assert not check_fingerprint(str(tmp_path / "cut"), fingerprint)
    assert sorted(os.listdir(tmp_path)) == ["cut", "graphs"]


def test_two_exports_of_one_folder_at_once_both_publish_a_whole_set(loaded_model, tmp_path, monkeypatch):
    """Two runs filling one cache entry at once each write their own staging folder: both succeed (one
    crashed with FileNotFoundError '.../age_net.onnx.tmp' when they shared a temporary name)."""
    from foss_d2.engine.onnx_backend import (
        AGE_NET_FILE,
        DETECTOR_FILE,
        FINGERPRINT_FILE,
        export_onnx,
        weights_fingerprint,
    )

    fingerprint = weights_fingerprint(loaded_model)
    # both exports hold their detector file written, not yet moved, at the same time
    monkeypatch.setattr(torch.onnx, "export", fake_exporter(barrier=threading.Barrier(2, timeout=60)))
    out = tmp_path / "cache" / "onnx" / "0123456789abcdef"
    models = [copy.deepcopy(loaded_model) for _ in range(2)]
    errors = []

    def export(model):
        try:
            export_onnx(model, str(out), fingerprint=fingerprint)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=export, args=(m,)) for m in models]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(os.listdir(out)) == [AGE_NET_FILE, DETECTOR_FILE, FINGERPRINT_FILE]
    assert (out / FINGERPRINT_FILE).read_text().strip() == fingerprint
    assert os.listdir(out.parent) == [out.name]  # no staging folder left


# ---------------------------------------------------------------- int8 export


def tiny_graphs(folder):
    """Two small float graphs under the backend's names and inputs (quantised in a second)."""
    from foss_d2.engine.onnx_backend import AGE_NET_FILE, DETECTOR_FILE, FINGERPRINT_FILE

    os.makedirs(folder)
    torch.manual_seed(0)
    for file, name in ((DETECTOR_FILE, "image"), (AGE_NET_FILE, "crops")):
        net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 1)).eval()
        torch.onnx.export(
            net, (torch.zeros(1, 3, 16, 16),), os.path.join(folder, file), input_names=[name], dynamo=False
        )
    with open(os.path.join(folder, FINGERPRINT_FILE), "w") as f:
        f.write("f1n6erpr1nt\n")


def test_int8_quantisation_that_fails_leaves_the_folder_as_it_was(tmp_path, monkeypatch):
    """quantize_graphs publishes the whole int8 set or nothing: no calibration inputs for the age
    network, or its quantisation failing after the detector's, leave the folder as it was (before,
    the int8 detector had replaced the float one, beside the float age network and its fingerprint:
    1 face, exit 0). A quantisation that ends publishes both graphs and the float graphs' fingerprint."""
    pytest.importorskip("onnxruntime")
    import onnx

    from foss_d2.engine.onnx_backend import AGE_NET_FILE, DETECTOR_FILE, FINGERPRINT_FILE
    from foss_d2.engine.quantize import quantize_graphs

    src = tmp_path / "float"
    tiny_graphs(src)
    out = tmp_path / "int8"
    before = old_folder(out)
    rng = np.random.default_rng(0)
    images = [{"image": rng.random((1, 3, 16, 16), dtype=np.float32)} for _ in range(2)]
    crops = [{"crops": rng.random((1, 3, 16, 16), dtype=np.float32)} for _ in range(2)]
    with pytest.raises(ValueError, match="no calibration inputs for age_net.onnx"):
        quantize_graphs(str(src), str(out), {"detector": images, "age_net": []})
    assert folder_bytes(out) == before
    import onnxruntime.quantization as ortq

    real, done = ortq.quantize_static, []

    def recorded(model_input, model_output, *args, **kwargs):  # which graphs were quantised, whole
        real(model_input, model_output, *args, **kwargs)
        done.append(os.path.basename(model_output))

    monkeypatch.setattr(ortq, "quantize_static", recorded)
    with pytest.raises(Exception) as e:  # the age network's feeds do not fit its graph: fails after the detector
        quantize_graphs(str(src), str(out), {"detector": images, "age_net": [{"wrong": c["crops"]} for c in crops]})
    assert done == [DETECTOR_FILE] and "wrong" in str(e.value)  # the int8 detector was staged, then it failed
    assert folder_bytes(out) == before
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["float", "int8"]

    paths = quantize_graphs(str(src), str(out), {"detector": images, "age_net": crops})
    assert paths == {"detector": str(out / DETECTOR_FILE), "age_net": str(out / AGE_NET_FILE)}
    for file in (DETECTOR_FILE, AGE_NET_FILE):
        assert "QuantizeLinear" in {n.op_type for n in onnx.load(str(out / file)).graph.node}
    assert (out / FINGERPRINT_FILE).read_text() == "f1n6erpr1nt\n"
    assert sorted(os.listdir(tmp_path)) == ["float", "int8"]


def test_int8_export_without_faces_in_the_calibration_leaves_the_folder_as_it_was(shipped_cfg, tmp_path, capsys):
    """The audit's case: --calibration a folder with one grey photo (no face, so nothing for the age
    network): a one-line error, and the folder as it was (a fresh one not made)."""
    pytest.importorskip("onnxruntime")
    from foss_d2.apps.export import main as export_main

    photos = tmp_path / "grey"
    photos.mkdir()
    cv2.imwrite(str(photos / "grey.jpg"), np.full((240, 320, 3), 128, np.uint8))
    out = tmp_path / "int8"
    before = old_folder(out)
    for folder in (out, tmp_path / "fresh"):
        with pytest.raises(SystemExit) as e:
            export_main(
                [shipped_cfg.MODEL.WEIGHTS, str(folder), "--format", "onnx", "--int8", "--calibration", str(photos)]
            )
        assert e.value.code == 2 and "no calibration inputs for age_net.onnx" in capsys.readouterr().err
    assert folder_bytes(out) == before
    assert sorted(os.listdir(tmp_path)) == ["grey", "int8"]


# ---------------------------------------------------------------- runs


def test_onnx_dir_without_its_fingerprint_is_refused(shipped_cfg, tmp_path):
    """An --onnx-dir without weights.sha1 (an export cut short or still running: the fingerprint comes
    last) is refused with a line saying to export again, not run with a warning."""
    pytest.importorskip("onnxruntime")
    from foss_d2.apps.demo import main as demo_main
    from foss_d2.engine import FOSSPredictor
    from foss_d2.engine.onnx_backend import FINGERPRINT_FILE

    folder = tmp_path / "graphs"
    old_folder(folder)
    os.remove(folder / FINGERPRINT_FILE)
    with pytest.raises(ValueError, match=r"no weights\.sha1.*export them again"):
        FOSSPredictor(shipped_cfg, backend="onnxruntime", onnx_dir=str(folder))
    with pytest.raises(SystemExit, match=r"does not say which weights .*export them again") as e:
        demo_main(
            ["--input", FAMILY, "--output", str(tmp_path / "o"), "--no-draw", "--backend", "onnxruntime"]
            + ["--onnx-dir", str(folder)]
        )
    assert "\n" not in str(e.value.code)
    assert sorted(os.listdir(folder)) == ["age_net.onnx", "detector.onnx"]  # nothing exported into it


def test_output_under_a_file_is_a_one_line_error(shipped_cfg, tmp_path, monkeypatch, capsys):
    """export's output under a regular file: exit 2 and one line, before the model loads; a cache under
    a file (FOSS_D2_CACHE): a ValueError saying which folder and what to set."""
    from foss_d2.apps.export import main as export_main
    from foss_d2.engine import FOSSPredictor

    afile = tmp_path / "afile"
    afile.write_text("a file\n")
    for output, fmt in ((afile / "sub", "onnx"), (afile / "sub" / "deeper", "onnx"), (afile / "x.pth", "pth")):
        with pytest.raises(SystemExit) as e:
            export_main([shipped_cfg.MODEL.WEIGHTS, str(output), "--format", fmt])
        err = capsys.readouterr().err
        assert e.value.code == 2 and f"{afile} is a file, not a folder" in err and err.count("\n") == 1, err
    assert afile.read_text() == "a file\n" and os.listdir(tmp_path) == ["afile"]

    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("FOSS_D2_CACHE", str(afile / "cache"))
    with pytest.raises(ValueError, match="cannot write the ONNX graphs into the cache folder .*FOSS_D2_CACHE"):
        FOSSPredictor(shipped_cfg, backend="onnxruntime")
    assert os.listdir(tmp_path) == ["afile"]
