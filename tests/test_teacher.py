"""MODEL.FOSS.TEACHER_WEIGHTS: a frozen teacher reads the student's crops; KL on unlabelled genders
and, with LAMBDA_TEACHER_AGE, on the ages it reads right."""

import math

import numpy as np
import pytest
import torch
from conftest import tiny_cfg

from foss_d2.roi_heads.losses import match_labels, teacher_age_loss, teacher_gender_loss

from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances

ALL_AGE_PARTS = ["body", "feature_proj", "age_branch", "gender_branch"]


def _targets():
    t = Instances((100, 100))
    t.gt_boxes = Boxes(torch.tensor([[0.0, 0.0, 40.0, 40.0], [50.0, 50.0, 90.0, 90.0]]))
    t.gt_ages = torch.tensor([30.0, 40.0])
    t.gt_genders = torch.tensor([-1.0, 1.0])  # the first face has no gender label
    return [t]


def test_teacher_gender_loss_by_hand():
    # box 0 on the unlabelled face, box 1 on the labelled one, box 2 on nothing (IoU 0)
    boxes = [torch.tensor([[0.0, 0.0, 40.0, 38.0], [50.0, 50.0, 90.0, 90.0], [40.0, 0.0, 50.0, 10.0]])]
    student = torch.tensor([0.0, 2.0, -1.0], requires_grad=True)
    teacher = torch.tensor([math.log(3.0), -3.0, 4.0])  # P(female) 0.75 on the face that counts
    loss = teacher_gender_loss(student, teacher, match_labels(boxes, _targets(), 0.3), 2.0)["loss_teacher_gender"]
    # KL(0.75 || 0.5) = 0.75 ln 1.5 + 0.25 ln 0.5
    assert float(loss.detach()) == pytest.approx(2.0 * (0.75 * math.log(1.5) + 0.25 * math.log(0.5)), abs=1e-6)
    loss.backward()
    # d/ds BCE(s, p) = sigmoid(s) - p, on box 0 only
    assert student.grad.tolist() == pytest.approx([2.0 * (0.5 - 0.75), 0.0, 0.0], abs=1e-6)
    # labelled faces too: box 1 (student 2.0, teacher -3.0) joins box 0 in the mean
    both = teacher_gender_loss(student.detach(), teacher, match_labels(boxes, _targets(), 0.3), 2.0, labelled_too=True)
    p1, q1 = torch.sigmoid(torch.tensor(-3.0)).item(), torch.sigmoid(torch.tensor(2.0)).item()
    kl1 = p1 * math.log(p1 / q1) + (1 - p1) * math.log((1 - p1) / (1 - q1))
    kl0 = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    assert float(both["loss_teacher_gender"]) == pytest.approx(2.0 * (kl0 + kl1) / 2, abs=1e-5)
    same = teacher_gender_loss(teacher.clone(), teacher, match_labels(boxes, _targets(), 0.3), 2.0)[
        "loss_teacher_gender"
    ]
    assert float(same) == pytest.approx(0.0, abs=1e-6)
    # no unlabelled face matched: an exact 0 that still belongs to the graph
    none = teacher_gender_loss(student, teacher, match_labels([boxes[0][1:]], _targets(), 0.3), 2.0)[
        "loss_teacher_gender"
    ]
    assert float(none) == 0.0 and none.requires_grad


def test_teacher_age_loss_by_hand():
    # three age classes (0, 1, 2 years); the teacher reads faces 0 and 1 as p = (0.2, 0.6, 0.2), mean 1
    teacher = torch.tensor([[0.0, math.log(3.0), 0.0]] * 4)
    student = torch.zeros(4, 3, requires_grad=True)  # q = 1/3 each
    ages = torch.tensor([1.0, 0.0, -1.0, 1.0])  # face 2 has no age label
    valid = torch.tensor([True, True, True, False])  # face 3 matched no face
    matches = (ages, torch.full((4,), -1.0), valid)
    kl = 2 * 0.2 * math.log(0.2 * 3) + 0.6 * math.log(0.6 * 3)
    # gate 0.5: face 1's label (0) is a year off the teacher's mean, so face 0 alone is heard
    loss = teacher_age_loss(student, teacher, matches, 2.0, gate=0.5)["loss_teacher_age"]
    assert float(loss.detach()) == pytest.approx(2.0 * kl, abs=1e-6)
    loss.backward()
    # d/ds KL(p || softmax(s)) = softmax(s) - p, on face 0 only
    assert student.grad[0].tolist() == pytest.approx([2.0 * (1 / 3 - 0.2), 2.0 * (1 / 3 - 0.6), 2.0 * (1 / 3 - 0.2)])
    assert student.grad[1:].abs().sum() == 0
    # gate 2: faces 0 and 1 both, the same KL each
    wide = teacher_age_loss(student.detach(), teacher, matches, 2.0, gate=2.0)["loss_teacher_age"]
    assert float(wide) == pytest.approx(2.0 * kl, abs=1e-6)
    # a teacher wrong on every labelled face is not heard: an exact 0 that still belongs to the graph
    none = teacher_age_loss(student, teacher, (ages + 5.0, matches[1], valid), 2.0, gate=2.0)["loss_teacher_age"]
    assert float(none) == 0.0 and none.requires_grad


def _sample():
    torch.manual_seed(0)
    inst = Instances((160, 200))
    inst.gt_boxes = Boxes(torch.tensor([[20.0, 30.0, 80.0, 100.0], [120.0, 40.0, 170.0, 110.0]]))
    inst.gt_classes = torch.zeros(2, dtype=torch.long)
    inst.gt_ages = torch.tensor([25.0, -1.0])
    inst.gt_genders = torch.tensor([-1.0, 0.0])
    return {"image": torch.randint(0, 256, (3, 160, 200), dtype=torch.uint8), "instances": inst}


def _save(model, path):
    torch.save({"model": model.state_dict()}, path)
    return str(path)


def _student(tmp_path, teacher_model, **overrides):
    cfg = tiny_cfg(**{"MODEL.FOSS.ADD_GT_BOXES": True, "MODEL.AGE_HEAD.CROP_JITTER": [0.1, 0.15, 0.1], **overrides})
    cfg.MODEL.FOSS.TEACHER_WEIGHTS = _save(teacher_model, tmp_path / "teacher.pth")
    return build_model(cfg)


def test_a_teacher_of_the_same_weights_teaches_nothing(tmp_path):
    """With every age-network part fixed (eval mode: no dropout, BatchNorm statistics held), a
    student with the teacher's own weights answers as the teacher does on every face, jittered crops
    included: the teacher reads the student's crops, not crops of its own."""
    overrides = {
        "MODEL.AGE_HEAD.FROZEN_PARTS": ALL_AGE_PARTS,
        "MODEL.AGE_HEAD.LAMBDA_TEACHER_AGE": 1.0,
        "MODEL.AGE_HEAD.TEACHER_AGE_GATE": 100.0,
    }
    torch.manual_seed(1)
    base = build_model(tiny_cfg(**overrides))
    student = _student(tmp_path, base, **overrides)
    student.load_state_dict(base.state_dict())
    student.train()
    losses = student([_sample(), _sample()])
    assert float(losses["loss_teacher_gender"]) == pytest.approx(0.0, abs=1e-6)
    assert float(losses["loss_teacher_age"]) == pytest.approx(0.0, abs=1e-6)
    assert float(losses["loss_gender"]) > 0  # the labelled face still learns from its label
    # not a zero for want of faces: a teacher whose P(female) or ages are shifted is heard at once
    student._teacher[0].age_head.net.gender_branch["fc"].bias.data += 1.0
    student._teacher[0].age_head.net.age_branch["fc"].bias.data[:30] += 1.0
    shifted = student([_sample(), _sample()])
    assert float(shifted["loss_teacher_gender"]) > 0.01 and float(shifted["loss_teacher_age"]) > 0.01


def test_the_teacher_is_frozen_and_outside_the_model(tmp_path):
    torch.manual_seed(2)
    other = build_model(tiny_cfg())
    torch.manual_seed(3)
    # a config's test-time precision is not the teacher's: its targets stay float32
    student = _student(tmp_path, other, **{"MODEL.AGE_HEAD.INFERENCE_DTYPE": "bfloat16"})
    (teacher,) = student._teacher
    assert student.age_head.inference_dtype == "bfloat16" and teacher.age_head.inference_dtype == "float32"
    assert not any(k.startswith("_teacher") for k in student.state_dict())
    assert {id(p) for p in student.parameters()}.isdisjoint(id(p) for p in teacher.parameters())
    assert torch.equal(teacher.age_head.net.gender_branch["fc"].weight, other.age_head.net.gender_branch["fc"].weight)
    student.train()
    assert not teacher.training
    losses = student([_sample(), _sample()])
    assert float(losses["loss_teacher_gender"]) > 0
    sum(losses.values()).backward()
    assert float(student.age_head.net.gender_branch["fc"].weight.grad.abs().sum()) > 0
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())


def test_teacher_weights_errors(tmp_path):
    cfg = tiny_cfg()
    cfg.MODEL.FOSS.TEACHER_WEIGHTS = str(tmp_path / "nothing.pth")
    with pytest.raises(FileNotFoundError, match="TEACHER_WEIGHTS: no such file"):
        build_model(cfg)
    for key in ("MODEL.FOSS.DETECTOR_ONLY", "MODEL.AGE_HEAD.GENDER_ON"):
        c = tiny_cfg(**{key: key.endswith("DETECTOR_ONLY")})
        c.MODEL.FOSS.TEACHER_WEIGHTS = cfg.MODEL.FOSS.TEACHER_WEIGHTS
        with pytest.raises(ValueError, match="needs an age head, with its gender branch unless it teaches ages"):
            build_model(c)
    # a gender-less student may learn its ages from the teacher
    ages_only = tiny_cfg(**{"MODEL.AGE_HEAD.GENDER_ON": False, "MODEL.AGE_HEAD.LAMBDA_TEACHER_AGE": 1.0})
    ages_only.MODEL.FOSS.TEACHER_WEIGHTS = _save(build_model(ages_only), tmp_path / "ages.pth")
    losses = build_model(ages_only).train()([_sample()])
    assert "loss_teacher_age" in losses and "loss_teacher_gender" not in losses
    detector_only = build_model(tiny_cfg(**{"MODEL.FOSS.DETECTOR_ONLY": True}))
    cfg.MODEL.FOSS.TEACHER_WEIGHTS = _save(detector_only, tmp_path / "detector.pth")
    with pytest.raises(ValueError, match="lacks .* tensors, e.g. .*age_head"):
        build_model(cfg)


def test_teacher_flip_teaches_its_mirror_averaged_answers(tmp_path, monkeypatch):
    """TEACHER_FLIP: the targets are the teacher's answers averaged over each crop and its mirror
    image, as the shipped config answers at test time."""
    import foss_d2.roi_heads.age_head as age_head_module

    torch.manual_seed(4)
    student = _student(
        tmp_path,
        build_model(tiny_cfg()),
        **{"MODEL.AGE_HEAD.TEACHER_FLIP": True, "MODEL.AGE_HEAD.LAMBDA_TEACHER_AGE": 1.0},
    )
    head = student._teacher[0].age_head
    seen, targets = {}, {}
    predict = head.predict

    def spy(crops, feat, mirror=False):
        seen.update(crops=crops, feat=feat, mirror=mirror)
        return predict(crops, feat, mirror)

    monkeypatch.setattr(head, "predict", spy)
    for name in ("teacher_gender_loss", "teacher_age_loss"):
        real = getattr(age_head_module, name)

        def capture(student_logits, teacher_logits, *args, _real=real, _name=name):
            targets[_name] = teacher_logits
            return _real(student_logits, teacher_logits, *args)

        monkeypatch.setattr(age_head_module, name, capture)
    student.train()
    student([_sample(), _sample()])
    assert seen["mirror"] is True
    crops, feat = seen["crops"], seen["feat"]
    with torch.no_grad():
        a_age, a_gen = head.net(crops, feat)
        b_age, b_gen = head.net(crops.flip(-1), feat.flip(-1))
    p_female = (a_gen.sigmoid() + b_gen.sigmoid()) / 2
    p_age = (a_age.softmax(1) + b_age.softmax(1)) / 2
    assert torch.allclose(targets["teacher_gender_loss"].sigmoid(), p_female, atol=1e-5)
    assert torch.allclose(targets["teacher_age_loss"].exp(), p_age, atol=1e-6)
    assert not torch.allclose(p_female, a_gen.sigmoid(), atol=1e-4)  # the mirror changed something


def _forward_counting_teacher_detector(student, seed):
    calls = []
    hook = student._teacher[0].backbone.register_forward_hook(lambda *args: calls.append(1))
    torch.manual_seed(seed)
    np.random.seed(seed)
    losses = student([_sample(), _sample()])
    hook.remove()
    return losses, len(calls)


def test_a_frozen_detector_shared_with_the_teacher_runs_once(tmp_path):
    """A frozen detector with the teacher's own weights gives the teacher's feature: the teacher's
    detector pass is skipped, and the losses are those of running it."""
    torch.manual_seed(5)
    base = build_model(tiny_cfg())
    student = _student(tmp_path, base)
    student.load_state_dict(base.state_dict())
    student.train()
    shared, calls = _forward_counting_teacher_detector(student, 7)
    assert student._teacher_shares_detector is True and calls == 0
    student._teacher_shares_detector = False  # the pass the reuse replaces
    repeated, calls = _forward_counting_teacher_detector(student, 7)
    assert calls == 1
    assert shared.keys() == repeated.keys()
    for k in shared:
        assert float(shared[k]) == pytest.approx(float(repeated[k]), abs=1e-6), k
    # not equal for want of a signal: the training student's BatchNorm reads batch statistics
    assert float(shared["loss_teacher_gender"]) > 0

    # a detector that differs in one weight, or one that trains, runs the teacher's own pass
    other = _student(tmp_path, base)
    other.load_state_dict(base.state_dict())
    with torch.no_grad():
        w = next(other.backbone.parameters())
        w[(0,) * w.dim()] += 0.5
    other.train()
    assert _forward_counting_teacher_detector(other, 7)[1] == 1 and other._teacher_shares_detector is False
    training = _student(tmp_path, base, **{"MODEL.FOSS.FREEZE_DETECTOR": False})
    training.load_state_dict(base.state_dict())
    training.train()
    assert _forward_counting_teacher_detector(training, 7)[1] == 1 and training._teacher_shares_detector is False


def test_the_teacher_reads_its_detector_at_each_steps_drawn_side(tmp_path):
    """With DET_INPUT_SIZES_TRAIN the teacher's detector runs at the side the step drew, as the
    student's: the crops' feature scales are the step's, so any other side would misplace the
    teacher's ROIs."""
    torch.manual_seed(6)
    other = build_model(tiny_cfg())
    torch.manual_seed(7)
    student = _student(tmp_path, other, **{"MODEL.FOSS.DET_INPUT_SIZES_TRAIN": [96, 160]})
    sides = {"student": [], "teacher": []}
    student.backbone.register_forward_hook(lambda m, a, o: sides["student"].append(a[0].shape[-1]))
    student._teacher[0].backbone.register_forward_hook(lambda m, a, o: sides["teacher"].append(a[0].shape[-1]))
    student.train()
    batches = [[_sample(), _sample()] for _ in range(6)]  # _sample() seeds torch itself
    torch.manual_seed(0)
    for batch in batches:
        student(batch)
    assert sides["teacher"] == sides["student"] and set(sides["student"]) == {96, 160}


def test_mirror_averaged_teacher_targets_of_an_fp16_teacher_are_finite():
    """TEACHER_FLIP under fp16 autocast: a teacher sure of a face's gender answers P(female) = 1
    exactly in fp16, where 1 - 1e-6 is 1 again (logit: inf), and an age class of probability 0,
    where 1e-12 is 0 (log: -inf); the targets are taken in float32."""
    from foss_d2.roi_heads import TResNetAgeHead

    class Teacher:
        def roi_feature(self, *args):
            return None

        def predict(self, crops, feat, mirror=False):
            probs = torch.zeros(len(crops), 101, dtype=torch.float16)
            probs[:, 30] = 1.0
            return probs, torch.ones(len(crops), dtype=torch.float16)

    head = TResNetAgeHead(
        tiny_cfg(**{"MODEL.AGE_HEAD.TEACHER_FLIP": True, "MODEL.AGE_HEAD.INTERMEDIATE_FEATURE": False})
    )
    t_age, t_gender = head.teacher_answers((Teacher(), None), torch.zeros(2, 3, 112, 80), None, None)
    assert torch.isfinite(t_gender).all() and float(t_gender[0]) == pytest.approx(13.81, abs=0.02)  # logit(1 - 1e-6)
    assert float(t_age[0, 0]) == pytest.approx(-27.631, abs=1e-3) and float(t_age[0, 30]) == 0.0  # log(1e-12), log(1)
