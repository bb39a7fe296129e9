"""The mirror average taught to the age network (tools/research/distill_mirror.py): the losses
vanish when one view answers as the target, the harvest keeps inference's faces and answers, and
the tool end to end at toy size."""

import json
import os

import pytest
import torch
from conftest import load_script, tiny_cfg, toy_tool_inputs

from foss_d2.engine.predictor import load_all_weights
from foss_d2.utils.image_io import read_image_file

from detectron2.modeling import build_model

mirror = load_script("tools/research/distill_mirror.py")
FAMILY = os.path.join(os.path.dirname(__file__), "..", "demo", "family.jpg")
# the paper's AGE_ON_ALL_K (tiny_cfg's): the age network reads all K_TEST peaks, whatever their score


def _family():
    img = read_image_file(FAMILY, "BGR")
    return torch.as_tensor(img.transpose(2, 0, 1).copy())


def test_harvest_keeps_inference_faces_and_mirror_answers():
    torch.manual_seed(0)
    model = build_model(tiny_cfg()).eval()
    part = mirror.harvest_one(model, _family())
    k = model.k_test
    assert part["crops"].dtype == torch.uint8 and part["crops"].shape == (k, 3, 112, 80)
    assert part["feature"].dtype == torch.float16 and part["probs"].shape == (k, 101)
    # the answers are the mirror average of the stored views (to the crops' uint8 rounding)
    crops = part["crops"].float() / 255
    probs, female = model.age_head.predict(crops, part["feature"].float(), mirror=True)
    assert torch.allclose(probs, part["probs"].float(), atol=2e-3)
    assert torch.allclose(female, part["female"], atol=2e-3)
    one, _ = model.age_head.predict(crops, part["feature"].float(), mirror=False)
    assert (one - probs).abs().max() > 1e-6  # the mirror changes the answers (a random network's: a little)


def test_losses_vanish_when_one_view_answers_as_the_target():
    torch.manual_seed(0)
    model = build_model(tiny_cfg()).eval()
    head = model.age_head
    part = mirror.harvest_one(model, _family())
    crops, feat = part["crops"].float() / 255, part["feature"].float()
    with torch.no_grad():
        probs, female = head.predict(crops, feat)
        losses = mirror.distill_losses(head, crops, feat, probs, female)
        assert float(losses["age"]) == pytest.approx(0.0, abs=1e-5)
        assert float(losses["gender"]) == pytest.approx(0.0, abs=1e-5)
        # a uniform target: KL = log(101) - H(p) > 0
        other = mirror.distill_losses(head, crops, feat, torch.full_like(probs, 1 / 101), female)
    assert float(other["age"]) > 1e-3


def test_tool_end_to_end(tmp_path):
    torch.manual_seed(0)
    cfg = tiny_cfg()
    model = build_model(cfg).eval()
    name = "distill_mirror_test_photos"
    cfg_file, weights = toy_tool_inputs(tmp_path, cfg, model, name, [FAMILY])
    out = tmp_path / "out"
    mirror.main(
        ["--config-file", str(cfg_file), "--datasets", name, "--epochs", "30", "--batch", "5"]
        + ["--lr", "1e-3", "--output", str(out), "MODEL.WEIGHTS", str(weights)]
    )
    log = json.load(open(out / "log.json"))
    assert log["faces"] == model.k_test and len(log["epochs"]) == 31
    first, last = log["epochs"][0], log["epochs"][-1]
    assert last["age"] < first["age"] / 2
    student = build_model(cfg).eval()
    load_all_weights(student, str(out / "model_final.pth"))
    # the detector is untouched
    for k, v in model.state_dict().items():
        if not k.startswith("age_head."):
            assert torch.equal(student.state_dict()[k], v), k
    # no face above the threshold: a clear stop, not a crash
    with pytest.raises(SystemExit, match="no face"):
        mirror.main(
            ["--config-file", str(cfg_file), "--datasets", name, "--output", str(tmp_path / "x")]
            + ["MODEL.WEIGHTS", str(weights), "MODEL.FOSS.AGE_ON_ALL_K", "False", "MODEL.FOSS.SCORE_THRESH_TEST", "1.0"]
        )
