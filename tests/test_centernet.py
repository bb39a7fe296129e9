import math
import os

import numpy as np
import pytest
import torch
from conftest import needs_shared_data, shared_data_path

from foss_d2.meta_arch.test_time_augmentation import flip_test_detect
from foss_d2.proposal_generator import (
    CenterNet,
    average_with_mirror,
    decode_centernet,
    draw_gaussian,
    focal_loss,
    gaussian_radius,
)

from detectron2.structures import Boxes, Instances


def test_gaussian_radius_square_box():
    # h = w = 10, overlap 0.7: case 3 is the smallest,
    # a = 4·0.7 = 2.8, b = -2·0.7·20 = -28, c = -0.3·100 = -30: r3 = (-28 + sqrt(784 + 336)) / 2
    r = gaussian_radius(10, 10, 0.7)
    assert r == pytest.approx((-28 + math.sqrt(1120)) / 2, rel=1e-12)
    assert r == pytest.approx(2.7332, abs=1e-4)
    # a wide box: CornerNet's three roots by hand
    h, w, m = 3.0, 41.0, 0.7
    r1 = (h + w + math.sqrt((h + w) ** 2 - 4 * w * h * (1 - m) / (1 + m))) / 2
    r2 = (2 * (h + w) + math.sqrt(4 * (h + w) ** 2 - 16 * (1 - m) * w * h)) / 2
    r3 = (-2 * m * (h + w) + math.sqrt(4 * m * m * (h + w) ** 2 - 16 * m * (m - 1) * w * h)) / 2
    assert gaussian_radius(h, w, m) == pytest.approx(min(r1, r2, r3), rel=1e-12)


def test_draw_gaussian_values_and_border_clipping():
    heat = np.zeros((5, 5), np.float32)
    draw_gaussian(heat, (2, 2), 1)  # sigma = 3/6 = 0.5
    assert heat[2, 2] == 1.0
    assert heat[2, 3] == pytest.approx(math.exp(-2), rel=1e-6)  # d² = 1: exp(-1 / (2·0.25))
    assert heat[1, 1] == pytest.approx(math.exp(-4), rel=1e-6)  # d² = 2
    assert heat[0, 0] == 0 and heat[2, 4] == 0  # outside the radius
    corner = np.zeros((3, 3), np.float32)
    draw_gaussian(corner, (0, 0), 1)  # clipped at the border, no exception
    assert corner[0, 0] == 1.0 and corner[0, 1] == pytest.approx(math.exp(-2), rel=1e-6)
    # elementwise max: a weaker splat does not lower an existing peak
    draw_gaussian(heat, (3, 2), 1)
    assert heat[2, 2] == 1.0 and heat[2, 3] == 1.0


def test_focal_loss_hand_computed():
    gt = torch.tensor([[[[1.0, 0.5], [0.0, 0.0]]]])
    pred = torch.tensor([[[[0.9, 0.5], [0.1, 0.2]]]])
    pos = math.log(0.9) * 0.1**2
    neg = (
        math.log(0.5) * 0.5**2 * 0.5**4  # gt 0.5: penalty (1 - 0.5)^4
        + math.log(0.9) * 0.1**2
        + math.log(0.8) * 0.2**2
    )
    expected = -(pos + neg) / 1.0
    assert float(focal_loss(pred, gt)) == pytest.approx(expected, rel=1e-5)
    # no positive: the negative part alone, not divided by 0
    gt0 = torch.zeros_like(gt)
    neg0 = math.log(0.1) * 0.9**2 + math.log(0.5) * 0.5**2 + math.log(0.9) * 0.1**2 + math.log(0.8) * 0.2**2
    assert float(focal_loss(pred, gt0)) == pytest.approx(-neg0, rel=1e-5)


def test_focal_loss_ignore_mask_drops_only_negative_terms():
    gt = torch.tensor([[[[1.0, 0.5], [0.0, 0.0]]]])
    pred = torch.tensor([[[[0.9, 0.5], [0.1, 0.2]]]])
    # ignore the 0.2 cell (a small face's) and, as well, the peak's: a peak is never ignored
    ignore = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    pos = math.log(0.9) * 0.1**2
    neg = math.log(0.5) * 0.5**2 * 0.5**4 + math.log(0.9) * 0.1**2  # without log(0.8) * 0.2^2
    assert float(focal_loss(pred, gt, ignore=ignore)) == pytest.approx(-(pos + neg), rel=1e-5)


def test_targets_faces_below_ignore_below_become_ignore_regions():
    head = CenterNet(in_feature="f", in_channels=4, stride=4, head_conv=8, ignore_below=16)
    inst = Instances((64, 64))
    inst.gt_boxes = Boxes(
        torch.tensor(
            [
                [8.0, 8.0, 24.0, 40.0],  # 16 x 32: a target
                [41.0, 9.0, 53.0, 21.0],  # 12 x 12 < 16: ignored, grid [10.25, 2.25, 13.25, 5.25]
                [40.0, 44.0, 60.0, 52.0],  # 20 x 8: the longer side counts, a target
            ]
        )
    )
    inst.gt_classes = torch.tensor([0, 0, 0])
    heat, bidx, inds, sizes, offs, ignore = head.targets([inst], 16, 16, "cpu")
    assert inds.tolist() == [6 * 16 + 4, 12 * 16 + 12]  # the two targets' centres, not the small face's
    assert sizes.tolist() == [[4.0, 8.0], [5.0, 2.0]]
    assert heat[0, 0, 3, 11] == 0  # no peak at the small face's centre (11.75, 3.75)
    expected = torch.zeros(16, 16)
    expected[2:6, 10:14] = 1  # the cells the box touches: columns 10-13, rows 2-5
    assert torch.equal(ignore[0, 0], expected)
    # the detector firing on the small face costs nothing; on empty background it does
    feats = {"f": torch.zeros(1, 4, 16, 16)}
    logits = torch.full((1, 1, 16, 16), -4.0)
    base = focal_loss(logits.sigmoid(), heat, ignore=ignore)
    fired = logits.clone()
    fired[0, 0, 3, 11] = 3.0
    assert float(focal_loss(fired.sigmoid(), heat, ignore=ignore)) == pytest.approx(float(base), rel=1e-6)
    fired[0, 0, 3, 11], fired[0, 0, 14, 2] = -4.0, 3.0
    assert float(focal_loss(fired.sigmoid(), heat, ignore=ignore)) > float(base) + 1.0
    results, losses = head((64, 64), feats, k=5, gt_instances=[inst])
    assert all(torch.isfinite(v) for v in losses.values())
    # at the right edge a face is measured as at the left: 14 px wide (grid 12.5-16) is ignored, all
    # of it, where the centre's clip to the last cell would have read 2.5 cells = 10 px
    edge = Instances((64, 64))
    edge.gt_boxes = Boxes(torch.tensor([[50.0, 0.0, 64.0, 6.0], [0.0, 0.0, 14.0, 6.0]]))
    edge.gt_classes = torch.tensor([0, 0])
    _, _, inds, _, _, ignore = head.targets([edge], 16, 16, "cpu")
    assert len(inds) == 0
    assert ignore[0, 0, 0:2].sum(dim=0).tolist() == [2.0] * 4 + [0.0] * 8 + [2.0] * 4  # rows 0-1
    assert float(ignore[0, 0].sum()) == 16
    # a face as wide as IGNORE_BELOW is a target
    wide = Instances((64, 64))
    wide.gt_boxes = Boxes(torch.tensor([[48.0, 0.0, 64.0, 6.0]]))
    wide.gt_classes = torch.tensor([0])
    _, _, inds, _, _, ignore = head.targets([wide], 16, 16, "cpu")
    assert len(inds) == 1 and ignore is None


def test_decode_planted_peak():
    heat = torch.zeros(1, 1, 8, 8)
    heat[0, 0, 3, 5] = 0.9
    heat[0, 0, 3, 4] = 0.8  # a neighbour: suppressed by the 3x3 max-pool NMS
    heat[0, 0, 7, 0] = 0.3
    size = torch.zeros(1, 2, 8, 8)
    size[0, :, 3, 5] = torch.tensor([4.0, 6.0])
    off = torch.zeros(1, 2, 8, 8)
    off[0, :, 3, 5] = torch.tensor([0.25, 0.5])
    boxes, scores, classes = decode_centernet(heat, size, off, k=3, stride=4)
    # centre (5.25, 3.5) * 4 = (21, 14); w = 16, h = 24
    assert torch.allclose(boxes[0, 0], torch.tensor([13.0, 2.0, 29.0, 26.0]))
    assert scores[0, :2].tolist() == pytest.approx([0.9, 0.3])
    assert float(scores[0, 2]) == 0.0  # only two peaks survive NMS
    assert classes.max() == 0


def test_targets_and_losses_at_planted_box():
    head = CenterNet(in_feature="f", in_channels=4, stride=4, head_conv=8)
    inst = Instances((64, 64))
    inst.gt_boxes = Boxes(torch.tensor([[8.0, 8.0, 24.0, 40.0]]))  # stride 4: [2, 2, 6, 10]
    inst.gt_classes = torch.tensor([0])
    heat, bidx, inds, sizes, offs, ignore = head.targets([inst], 16, 16, "cpu")
    assert ignore is None  # IGNORE_BELOW off: every face a target
    assert heat[0, 0, 6, 4] == 1.0 and heat.sum() > 1.0  # peak at centre (4, 6), Gaussian around
    assert inds.tolist() == [6 * 16 + 4] and bidx.tolist() == [0]
    assert sizes.tolist() == [[4.0, 8.0]] and offs.tolist() == [[0.0, 0.0]]
    feats = {"f": torch.randn(1, 4, 16, 16)}
    results, losses = head((64, 64), feats, k=5, gt_instances=[inst])
    assert set(losses) == {"loss_heatmap", "loss_size", "loss_offset"}
    assert all(torch.isfinite(v) for v in losses.values())
    assert len(results[0]) == 5
    # an image without faces: finite losses, zero size/offset loss
    empty = Instances((64, 64))
    empty.gt_boxes = Boxes(torch.zeros(0, 4))
    empty.gt_classes = torch.zeros(0, dtype=torch.long)
    _, losses = head((64, 64), feats, k=5, gt_instances=[empty])
    assert float(losses["loss_size"]) == 0 and torch.isfinite(losses["loss_heatmap"])


def test_size_and_offset_losses_by_hand():
    """CenterNet's RegL1Loss with λ: the box [8, 8, 24, 40] at stride 4 has its centre at cell
    (row 6, col 4) and size (4, 8) cells, offset (0, 0). Predicted size (5, 8): |1| + |0| over 2
    coordinates x 1 face = 0.5, x λ_size 0.1 = 0.05; predicted offset (0.5, 0): 0.25 x λ_off 1.
    A second face [40, 0, 56, 16] (centre (2, 12), size (4, 4)) predicted exactly: the sums halve."""
    head = CenterNet(in_feature="f", in_channels=4, stride=4, head_conv=8)
    assert (head.lambda_size, head.lambda_off) == (0.1, 1.0)  # the paper's (CenterNet's) weights
    inst = Instances((64, 64))
    inst.gt_boxes = Boxes(torch.tensor([[8.0, 8.0, 24.0, 40.0]]))
    inst.gt_classes = torch.tensor([0])
    heat = torch.full((1, 1, 16, 16), -5.0)
    size, offset = torch.zeros(1, 2, 16, 16), torch.zeros(1, 2, 16, 16)
    size[0, :, 6, 4] = torch.tensor([5.0, 8.0])
    offset[0, :, 6, 4] = torch.tensor([0.5, 0.0])
    losses = head.losses(heat, None, [inst], size=size, offset=offset)
    assert float(losses["loss_size"]) == pytest.approx(0.05)
    assert float(losses["loss_offset"]) == pytest.approx(0.25)
    two = Instances((64, 64))
    two.gt_boxes = Boxes(torch.tensor([[8.0, 8.0, 24.0, 40.0], [40.0, 0.0, 56.0, 16.0]]))
    two.gt_classes = torch.tensor([0, 0])
    size[0, :, 2, 12] = torch.tensor([4.0, 4.0])
    losses = head.losses(heat, None, [two], size=size, offset=offset)
    assert float(losses["loss_size"]) == pytest.approx(0.025)
    assert float(losses["loss_offset"]) == pytest.approx(0.125)


def test_heatmap_loss_of_a_confident_detector_in_fp16_is_finite():
    """Under fp16 autocast (SOLVER.AMP on a GPU) the heatmap logits are fp16: a logit of 9 has a
    sigmoid of 0.99988, which fp16 rounds to exactly 1, and the clamp to 1 - 1e-4 is 1 again in
    fp16, so log(1 - p) was -inf: NaN at the face's centre (-inf x 0), +inf beside it. The loss is
    taken in float32: the same as from float32 logits."""
    head = CenterNet(in_feature="f", in_channels=4, stride=4, head_conv=8)
    inst = Instances((64, 64))
    inst.gt_boxes = Boxes(torch.tensor([[8.0, 8.0, 24.0, 40.0]]))
    inst.gt_classes = torch.tensor([0])
    heat = torch.full((1, 1, 16, 16), -6.0)
    heat[0, 0, 5:8, 3:6] = 9.0  # the centre (6, 4) and its 8 neighbours
    assert heat.half().sigmoid()[0, 0, 6, 4] == 1.0  # what fp16 makes of it
    size = offset = torch.zeros(1, 2, 16, 16)
    want = head.losses(heat, None, [inst], size=size, offset=offset)["loss_heatmap"]
    got = head.losses(heat.half(), None, [inst], size=size, offset=offset)["loss_heatmap"]
    assert torch.isfinite(got) and float(got) == pytest.approx(float(want), rel=1e-3)


class _Slice(torch.nn.Module):
    """A stand-in head that reads its map off the feature's channels [a, b)."""

    def __init__(self, a, b):
        super().__init__()
        self.a, self.b = a, b

    def forward(self, x):
        return x[:, self.a : self.b]


def test_flip_test_averages_heatmap_and_size_and_keeps_the_offset():
    """MODEL.CENTERNET.TEST_FLIP (flip_test_detect, composed by FOSSWithTTA).

    Feature channels: 0 heatmap logit, 1-2 size, 3-4 offset, on an 8x8 map (stride 4).
    Unmirrored input: a peak of p = 0.8 at (row 3, col 5), size (4, 6), offset (0.25, 0.5).
    Mirrored input: p = 0.4 at (row 3, col 8 - 1 - 5 = 2), size (8, 10), offset (0.9, 0.9).
    Flip test: p = (0.8 + 0.4) / 2 = 0.6, size (6, 8), offset (0.25, 0.5) (the unmirrored one), so
    centre (5.25, 3.5) * 4 = (21, 14), w = 24, h = 32: [9, -2, 33, 30]. Without it: [13, 2, 29, 26], 0.8."""
    head = CenterNet(in_feature="f", in_channels=5, stride=4, head_conv=8)
    head.heatmap, head.size, head.offset = _Slice(0, 1), _Slice(1, 3), _Slice(3, 5)

    def feature(row, col, p, size, off):
        f = torch.zeros(1, 5, 8, 8)
        f[0, 0] = -30.0  # sigmoid ~ 1e-13 everywhere but the peak
        f[0, 0, row, col] = math.log(p / (1 - p))
        f[0, 1:3, row, col] = torch.tensor(size)
        f[0, 3:5, row, col] = torch.tensor(off)
        return {"f": f}

    plain = feature(3, 5, 0.8, [4.0, 6.0], [0.25, 0.5])
    mirrored = feature(3, 2, 0.4, [8.0, 10.0], [0.9, 0.9])
    (r,), _ = head((32, 32), plain, k=1)
    assert r.pred_boxes.tensor[0].tolist() == pytest.approx([13.0, 2.0, 29.0, 26.0])
    assert float(r.scores[0]) == pytest.approx(0.8)
    (r,) = flip_test_detect(head, (32, 32), plain, mirrored, k=1)
    assert r.pred_boxes.tensor[0].tolist() == pytest.approx([9.0, -2.0, 33.0, 30.0])
    assert float(r.scores[0]) == pytest.approx(0.6)
    # the helper itself: column j of the result is the mean of a[j] and b[W - 1 - j]
    a = torch.arange(4.0).view(1, 1, 1, 4)
    assert average_with_mirror(a, torch.tensor([10.0, 20.0, 30.0, 40.0]).view(1, 1, 1, 4)).flatten().tolist() == [
        20.0,
        15.5,
        11.0,
        6.5,
    ]


def test_forward_is_head_outputs_then_decode():
    """The pieces the test-time options compose give what ``forward`` gives: exactly with dense
    heads, up to float rounding with the size and offset heads run at the peaks only."""
    torch.manual_seed(0)
    head = CenterNet(in_feature="f", in_channels=4, stride=4, head_conv=8).eval()
    feats = {"f": torch.randn(2, 4, 16, 16)}
    with torch.no_grad():
        sparse, losses = head((64, 64), feats, k=4)
        head.sparse_test = False
        results, _ = head((64, 64), feats, k=4)
        heat, size, offset = head.head_outputs(feats)
        pieces = head.decode((64, 64), heat.sigmoid(), size, offset, k=4)
    assert losses == {} and head.head_outputs(feats, with_offset=False)[2] is None
    for r, q, s in zip(results, pieces, sparse):
        assert torch.equal(r.pred_boxes.tensor, q.pred_boxes.tensor) and torch.equal(r.scores, q.scores)
        assert torch.allclose(s.pred_boxes.tensor, q.pred_boxes.tensor, atol=1e-4) and torch.equal(s.scores, q.scores)


def test_training_heads_at_the_centres_equal_the_dense_heads():
    """``sparse_train``: the size and offset heads run at the faces' centres only give the dense
    heads' losses, gradients (feature and weights) and proposals; faces at the grid's corners check
    the zero padding of the 3x3 neighbourhood, and an image without faces sits in the batch."""
    torch.manual_seed(0)
    boxes = [
        [[0.0, 0.0, 6.0, 6.0], [8.0, 8.0, 24.0, 40.0], [50.0, 52.0, 64.0, 64.0]],  # corners: centres (0,0), (14,14)
        [],
        [[20.0, 4.0, 36.0, 30.0]],
    ]
    gts = []
    for b in boxes:
        inst = Instances((64, 64))
        inst.gt_boxes = Boxes(torch.tensor(b).reshape(-1, 4))
        inst.gt_classes = torch.zeros(len(b), dtype=torch.long)
        gts.append(inst)
    head = CenterNet(in_feature="f", in_channels=4, stride=4, head_conv=8)
    feat = torch.randn(3, 4, 16, 16)
    runs = {}
    for sparse in (False, True):
        head.sparse_train = sparse
        head.zero_grad()
        x = feat.clone().requires_grad_(True)
        results, losses = head((64, 64), {"f": x}, k=5, gt_instances=gts)
        sum(losses.values()).backward()
        grads = {n: p.grad.clone() for n, p in head.named_parameters()}
        runs[sparse] = results, {k: float(v) for k, v in losses.items()}, x.grad.clone(), grads
    (dense_res, dense_loss, dense_gx, dense_gw), (res, loss, gx, gw) = runs[False], runs[True]
    assert loss == pytest.approx(dense_loss, rel=1e-6) and dense_loss["loss_size"] > 0
    assert torch.allclose(gx, dense_gx, atol=1e-6) and gx.abs().sum() > 0
    for n in dense_gw:
        assert torch.allclose(gw[n], dense_gw[n], atol=1e-6), n
    assert dense_gw["size.0.weight"].abs().sum() > 0 and dense_gw["offset.2.bias"].abs().sum() > 0
    for r, d in zip(res, dense_res):
        assert torch.equal(r.scores, d.scores) and torch.allclose(r.pred_boxes.tensor, d.pred_boxes.tensor, atol=1e-4)


def test_score_floor_decodes_only_the_peaks_above_it(monkeypatch):
    """With ``min_score`` the size and offset heads run at the peaks above it (as many per image as
    the image with the most), and those peaks get the boxes they get without the floor: K is a cap."""
    import foss_d2.proposal_generator.centernet as centernet

    torch.manual_seed(0)
    head = CenterNet(in_feature="f", in_channels=4, stride=4, head_conv=8).eval()
    feats = {"f": torch.randn(2, 4, 16, 16)}
    points = []
    real = centernet.head_at_points
    monkeypatch.setattr(centernet, "head_at_points", lambda h, x, pix: points.append(pix.shape) or real(h, x, pix))
    with torch.no_grad():
        full, _ = head((64, 64), feats, k=20)
        scores = torch.stack([r.scores for r in full])
        floor = float(scores[0, 2] + scores[0, 3]) / 2  # image 0: 3 peaks above it
        above = (scores > floor).sum(1).tolist()
        assert above[0] == 3
        floored, _ = head((64, 64), feats, k=20, min_score=floor)
        nothing, _ = head((64, 64), feats, k=20, min_score=1.0)
    keep = max(above)
    assert points == [(2, 20), (2, 20), (2, keep), (2, keep), (2, 1), (2, 1)]  # size, offset heads per call
    for f, r in zip(floored, full):
        assert len(f) == keep and torch.equal(f.scores, r.scores[:keep])
        assert torch.allclose(f.pred_boxes.tensor, r.pred_boxes.tensor[:keep], atol=1e-5)
    assert [len(r) for r in nothing] == [1, 1]  # one peak decoded even when none is above


def _targets_face_by_face(head, gt_instances, out_h, out_w):
    """CenterNet's targets as its reference code draws them, one face at a time (gaussian_radius,
    draw_gaussian): what ``CenterNet.targets`` computed until it took every face at once."""
    b, nc, s = len(gt_instances), head.num_classes, head.stride
    heat = np.zeros((b, nc, out_h, out_w), dtype=np.float32)
    ignore = np.zeros_like(heat)
    inds, sizes, offs, batch_idx = [], [], [], []
    for i, inst in enumerate(gt_instances):
        boxes = inst.gt_boxes.tensor.numpy() / s
        classes = inst.gt_classes.numpy() if inst.has("gt_classes") else np.zeros(len(boxes), np.int64)
        for (x1, y1, x2, y2), cls in zip(boxes, classes):
            if head.ignore_below > 0:
                vx1, vx2 = np.clip([x1, x2], 0, out_w)
                vy1, vy2 = np.clip([y1, y2], 0, out_h)
                if vx2 > vx1 and vy2 > vy1 and max(vx2 - vx1, vy2 - vy1) * s < head.ignore_below:
                    r0, c0 = int(vy1), int(vx1)
                    ignore[i, int(cls), r0 : max(r0 + 1, math.ceil(vy2)), c0 : max(c0 + 1, math.ceil(vx2))] = 1.0
                    continue
            x1, x2 = np.clip([x1, x2], 0, out_w - 1)
            y1, y2 = np.clip([y1, y2], 0, out_h - 1)
            w, h = x2 - x1, y2 - y1
            if w <= 0 or h <= 0:
                continue
            radius = max(0, int(gaussian_radius(math.ceil(h), math.ceil(w), head.min_overlap)))
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            ix, iy = int(cx), int(cy)
            draw_gaussian(heat[i, int(cls)], (ix, iy), radius)
            inds.append(iy * out_w + ix)
            sizes.append((w, h))
            offs.append((cx - ix, cy - iy))
            batch_idx.append(i)
    return (
        heat,
        batch_idx,
        inds,
        np.array(sizes, np.float32).reshape(-1, 2),
        np.array(offs, np.float32).reshape(-1, 2),
        ignore,
    )


def _assert_targets_as_face_by_face(head, gt_instances, out_h, out_w):
    heat, bidx, inds, sizes, offs, ignore = head.targets(gt_instances, out_h, out_w, "cpu")
    want = _targets_face_by_face(head, gt_instances, out_h, out_w)
    # the Gaussians in float64 then float32 both ways: equal but for exp's last bit in float64
    torch.testing.assert_close(heat, torch.from_numpy(want[0]), rtol=0, atol=1e-7)
    assert torch.equal(heat == 1.0, torch.from_numpy(want[0] == 1.0))  # the peaks, exactly
    assert torch.equal(heat > 0, torch.from_numpy(want[0] > 0))  # where draw_gaussian cuts its tails
    assert bidx.tolist() == want[1] and inds.tolist() == want[2]
    assert torch.equal(sizes, torch.from_numpy(want[3])) and torch.equal(offs, torch.from_numpy(want[4]))
    if want[5].any():
        assert torch.equal(ignore, torch.from_numpy(want[5]))
    else:
        assert ignore is None
    return heat


@pytest.mark.parametrize("ignore_below,num_classes", [(0.0, 1), (8.0, 1), (16.0, 2), (30.0, 1)])
def test_targets_of_a_batch_equal_the_reference_face_by_face(ignore_below, num_classes):
    """Every face of a batch at once gives CenterNet's reference targets: faces of every size from
    under a cell to the whole picture, on and past every edge, without area, and images without
    faces."""
    rng = np.random.default_rng(int(ignore_below) + num_classes)
    head = CenterNet(
        in_feature="f", in_channels=4, stride=4, head_conv=8, ignore_below=ignore_below, num_classes=num_classes
    )
    batch = []
    for n in (40, 0, 25, 1, 60):
        side = np.exp(rng.uniform(np.log(0.5), np.log(400), (n, 2)))  # 0.5-400 px on a 256 x 192 input
        centre = rng.uniform(-20, 276, (n, 2))
        boxes = np.concatenate([centre - side / 2, centre + side / 2], axis=1)
        boxes[: n // 10, 2] = boxes[: n // 10, 0]  # no width
        inst = Instances((192, 256))
        inst.gt_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
        inst.gt_classes = torch.tensor(rng.integers(0, num_classes, n))
        batch.append(inst)
    heat = _assert_targets_as_face_by_face(head, batch, 48, 64)
    assert heat[1].sum() == 0 and (heat == 1.0).sum() >= 50  # the empty image; many peaks
    assert head.targets([], 48, 64, "cpu")[0].shape == (0, num_classes, 48, 64)
    # a class id past NUM_CLASSES would land in the next image's heatmap: refused
    batch[0].gt_classes = batch[0].gt_classes + num_classes
    with pytest.raises(ValueError, match="NUM_CLASSES"):
        head.targets(batch, 48, 64, "cpu")


@needs_shared_data
def test_targets_of_crowded_wider_photos_equal_the_reference():
    """WIDER FACE's crowds (widerface_more: 68% of the faces under 16 px) at the recipe's 480 px
    input and its IGNORE_BELOW of 8 px: the same targets as face by face."""
    from foss_d2.data.datasets.wider_face import load_wider_face

    root = shared_data_path("widerface_more")
    records = load_wider_face(
        os.path.join(root, "WIDER_train", "images"),
        os.path.join(root, "wider_face_split", "wider_face_train_bbx_gt.txt"),
    )[:32]
    batch = []
    for r in records:
        scale = 480 / max(r["height"], r["width"])
        inst = Instances((480, 480))
        boxes = [a["bbox"] for a in r["annotations"]]  # XYWH
        xyxy = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
        xyxy[:, 2:] += xyxy[:, :2]
        inst.gt_boxes = Boxes(xyxy * scale)
        batch.append(inst)
    assert sum(len(i) for i in batch) > 500
    head = CenterNet(in_feature="f", in_channels=4, stride=4, head_conv=8, ignore_below=8.0)
    _assert_targets_as_face_by_face(head, batch, 120, 120)
