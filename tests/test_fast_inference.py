"""Inference speed-ups that must not change answers (issue 19): BatchNorm folding, sparse CenterNet
size/offset heads, the detector input sized to small photos, the ONNX export and its runtime
backend, and the peer benchmark's bookkeeping."""

import copy
import glob
import io
import math
import os
import shutil

import cv2
import numpy as np
import pytest
import torch
from conftest import needs_shared_data, shared_data_path
from torch import nn

from foss_d2.engine.fusion import fold_batchnorm, fold_conv_bn
from foss_d2.proposal_generator.centernet import _head, decode_centernet, head_at_points, peak_boxes, top_peaks

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAMILY = os.path.join(REPO, "demo", "family.jpg")


def test_fold_conv_bn_by_hand():
    # y = bn(2x) with mean 1, var 3, eps 1 (sqrt 2), gamma 4, beta 0.5: (2x - 1) * 4 / 2 + 0.5 = 4x - 1.5
    conv = nn.Conv2d(1, 1, 1, bias=False)
    bn = nn.BatchNorm2d(1, eps=1.0)
    with torch.no_grad():
        conv.weight.fill_(2.0)
        bn.running_mean.fill_(1.0)
        bn.running_var.fill_(3.0)
        bn.weight.fill_(4.0)
        bn.bias.fill_(0.5)
    bn.eval()
    fused = fold_conv_bn(conv, bn)
    assert fused.weight.item() == pytest.approx(4.0)
    assert fused.bias.item() == pytest.approx(-1.5)
    x = torch.tensor([[[[0.0, 1.0], [2.0, -3.0]]]])
    assert torch.allclose(fused(x), 4 * x - 1.5)


def test_fold_batchnorm_keeps_outputs_and_activations():
    from timm.layers import ConvNormAct

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=True), nn.BatchNorm2d(8), nn.ReLU(), ConvNormAct(8, 4, kernel_size=3)
    )
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 2)
            m.bias.data.uniform_(-1, 1)
    with pytest.raises(ValueError, match="call model.eval"):
        fold_batchnorm(model)  # training mode
    model.eval()
    x = torch.randn(2, 3, 9, 7)
    before = model(x)
    assert fold_batchnorm(model) == 2
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    after = model(x)
    assert (after >= 0).all()  # ConvNormAct's ReLU survived the fold
    assert torch.allclose(before, after, atol=1e-5)


@pytest.fixture
def packed_calls(monkeypatch):
    """How many times a PrepackedConv2d ran oneDNN's prepacked convolution (not the plain conv)."""
    from foss_d2.engine.fusion import PrepackedConv2d, fusing_works, prepacking_works

    if not prepacking_works():
        pytest.skip("this PyTorch build has no oneDNN prepacked convolution (the plain convs stay)")
    fusing_works()  # its probe (run once a process) is not a call of the code under test
    calls = []
    real = PrepackedConv2d._packed_forward

    def spy(self, x, dtype, residual=None):
        calls.append(x.shape[0])
        return real(self, x, dtype, residual)

    monkeypatch.setattr(PrepackedConv2d, "_packed_forward", spy)
    return calls


def test_prepacked_conv_by_hand_and_against_plain_convs(packed_calls):
    from foss_d2.engine.fusion import PrepackedConv2d, prepack_convolutions

    # y = 2x + 1, per pixel, two images
    conv = nn.Conv2d(1, 1, 1)
    with torch.no_grad():
        conv.weight.fill_(2.0)
        conv.bias.fill_(1.0)
    x = torch.tensor([[[[0.0, 1.0], [2.0, -3.0]]]]).repeat(2, 1, 1, 1)
    with torch.inference_mode():
        assert torch.allclose(PrepackedConv2d.from_conv(conv)(x), 2 * x + 1)
    assert packed_calls == [2]
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, groups=4), nn.Conv2d(8, 5, 1)
    ).eval()
    packed = copy.deepcopy(net)
    assert prepack_convolutions(packed) == 3 and isinstance(packed[2], PrepackedConv2d)
    one_thread = torch.get_num_threads() == 1
    for n, prepacked in ((1, one_thread), (3, True), (15, True), (16, True), (64, True)):
        packed_calls.clear()
        x = torch.randn(n, 3, 17, 12)
        with torch.inference_mode():
            assert torch.allclose(packed(x), net(x), atol=1e-5), n
        assert len(packed_calls) == (3 if prepacked else 0), n


def test_prepacked_conv_leaves_training_and_tracing_to_the_plain_conv(packed_calls):
    from foss_d2.engine.fusion import prepack_convolutions, prepacking_works

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 1)).eval()
    packed = copy.deepcopy(net)
    prepack_convolutions(packed)
    x = torch.randn(2, 3, 9, 7)
    # autograd: the plain conv, so the gradients are the plain ones
    packed(x).square().sum().backward()
    net(x).square().sum().backward()
    assert torch.allclose(packed[2].weight.grad, net[2].weight.grad, atol=1e-4) and packed[0].bias.grad is not None
    assert packed_calls == []
    # a bfloat16 autocast: the weights packed in bfloat16 where oneDNN has bfloat16 kernels
    bf16 = prepacking_works(torch.bfloat16)  # (its first call tries the packed conv once)
    packed_calls.clear()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        y = packed(x)
    assert y.dtype == torch.bfloat16 and torch.allclose(y.float(), net(x), atol=0.05)
    assert len(packed_calls) == (2 if bf16 else 0)
    packed_calls.clear()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.float16):  # no packed float16: the plain conv
        packed(x)
    with torch.no_grad():
        traced = torch.jit.trace(packed, x, check_trace=False)  # as ONNX export and fvcore's FLOP count do
    assert packed_calls == []
    with torch.no_grad():
        assert torch.allclose(traced(x), net(x), atol=1e-5)


def test_prepacked_conv_in_bfloat16_by_hand(packed_calls):
    """Under a bfloat16 autocast the packed conv runs in bfloat16 at every batch size and thread
    count (its weight packed once a shape in bfloat16: the plain conv would cast and reorder it at
    every call): y = 2x + 1 on numbers bfloat16 holds exactly, and a 3x3 conv to bfloat16's rounding."""
    from foss_d2.engine.fusion import PrepackedConv2d, prepacking_works

    if not prepacking_works(torch.bfloat16):
        pytest.skip("this CPU or PyTorch build has no oneDNN bfloat16 convolution (AVX-512 or AVX-NE-CONVERT)")
    packed_calls.clear()
    conv = nn.Conv2d(1, 1, 1)
    with torch.no_grad():
        conv.weight.fill_(2.0)
        conv.bias.fill_(1.0)
    packed = PrepackedConv2d.from_conv(conv)
    for n in (1, 3, 20):  # one image on several threads too
        x = torch.tensor([[[[0.0, 1.5], [2.0, -3.0]]]]).repeat(n, 1, 1, 1)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            y = packed(x)
        assert y.dtype == torch.bfloat16 and torch.equal(y.float(), 2 * x + 1)
    assert packed_calls == [1, 3, 20]
    assert {key[-1] for key in packed._packs} == {torch.bfloat16}
    torch.manual_seed(0)
    conv = nn.Conv2d(16, 32, 3, padding=1).eval()
    x = torch.randn(4, 16, 9, 7)
    with torch.inference_mode():
        expected = conv(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = PrepackedConv2d.from_conv(conv)(x).float()
    assert 0 < float((got - expected).norm() / expected.norm()) < 0.01


def onednn_exec_log(capfd, run):
    """``run()``'s result and oneDNN's verbose lines of the primitives it executed (the output
    captured before it is dropped)."""
    capfd.readouterr()
    with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
        out = run()
    return out, [line for line in capfd.readouterr().out.splitlines() if ",exec," in line]


def assert_convolutions_without_reorders(log, n: int):
    """``n`` convolutions in the log and no reorder (of a weight packed before); a skip where
    this PyTorch build's oneDNN writes no log."""
    if not any(",convolution," in line for line in log):
        pytest.skip("this PyTorch build's oneDNN writes no verbose log")
    assert sum(",convolution," in line for line in log) == n
    assert [line for line in log if ",reorder," in line] == []


def test_prepacked_conv_in_bfloat16_never_reorders_its_weight_at_a_call(packed_calls, capfd):
    """Under a bfloat16 autocast every batch size shares the weight packed at a batch of 2 (an age
    network's calls take 1 to 64 crops): oneDNN's log shows no reorder at a call of 1, 2, 32 or 64
    once each shape has run."""
    from foss_d2.engine.fusion import prepack_convolutions, prepacking_works

    if not prepacking_works(torch.bfloat16):
        pytest.skip("this CPU or PyTorch build has no oneDNN bfloat16 convolution (AVX-512 or AVX-NE-CONVERT)")
    torch.manual_seed(0)
    packed = nn.Sequential(nn.Conv2d(64, 64, 3, padding=1)).eval()
    prepack_convolutions(packed)
    inputs = [torch.randn(n, 64, 28, 20) for n in (2, 32, 64, 1)]
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        for x in inputs:
            packed(x)
        _, log = onednn_exec_log(capfd, lambda: [packed(x) for x in inputs])
    assert_convolutions_without_reorders(log, len(inputs))


def test_prepacked_conv_copies_and_follows_new_weights(packed_calls):
    from foss_d2.engine.fusion import prepack_convolutions

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 5, 1)).eval()
    packed = copy.deepcopy(net)
    prepack_convolutions(packed)
    x = torch.randn(2, 3, 9, 7)
    # copied and pickled: the packed tensor is rebuilt from the weight
    again = copy.deepcopy(packed)
    buf = io.BytesIO()
    torch.save(packed, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    with torch.inference_mode():
        assert torch.allclose(again(x), net(x), atol=1e-5) and torch.allclose(loaded(x), net(x), atol=1e-5)
    assert len(packed_calls) == 4
    # new weights loaded in place are packed again before use
    other = copy.deepcopy(net)
    with torch.no_grad():
        other[1].weight.mul_(-2.0)
    packed.load_state_dict(other.state_dict())
    with torch.inference_mode():
        assert torch.allclose(packed(x), other(x), atol=1e-5)
    # through .data the version counter does not move: repack() is the way
    packed[1].weight.data.mul_(0.5)
    packed[1].repack()
    with torch.no_grad():
        other[1].weight.mul_(0.5)
    with torch.inference_mode():
        assert torch.allclose(packed(x), other(x), atol=1e-5)


def test_fuse_activations_by_hand(packed_calls):
    from foss_d2.engine.fusion import PrepackedConv2d, fuse_activations, prepack_convolutions

    def net(act):  # y = act(2x - 1): conv, BatchNorm with identity statistics, activation
        conv, bn = nn.Conv2d(1, 16, 1), nn.BatchNorm2d(16)
        with torch.no_grad():
            conv.weight.fill_(2.0)
            conv.bias.fill_(-1.0)
        return nn.Sequential(conv, bn, act).eval()

    x = torch.tensor([[[[0.0, 1.0], [2.0, -3.0]]]]).repeat(2, 1, 1, 1)
    for act, want in ((nn.ReLU(), [[0.0, 1.0], [3.0, 0.0]]), (nn.LeakyReLU(0.1), [[-0.1, 1.0], [3.0, -0.7]])):
        model = net(act)
        fold_batchnorm(model)
        prepack_convolutions(model)
        assert fuse_activations(model) == 1
        assert isinstance(model[0], PrepackedConv2d) and not model[0].answers_as_conv2d
        assert [type(m) for m in model[1:]] == [nn.Identity, nn.Identity]
        packed_calls.clear()
        with torch.inference_mode():
            y = model(x)  # oneDNN's convolution with the activation inside
        assert packed_calls == [2]
        assert torch.allclose(y[:, 5], torch.tensor(want).expand(2, 2, 2), atol=1e-6)
        # the plain conv (autograd on) applies it after
        assert torch.allclose(model(x).detach(), y, atol=1e-6) and packed_calls == [2]


def test_fuse_activations_in_timms_conv_norm_act_and_se(packed_calls):
    """timm's ConvNormAct (LeakyReLU inside its BatchNormAct2d, as TResNet has it) and SEModule
    (fc1, ReLU) lose their activation modules to the convolutions and answer as before."""
    from timm.layers import ConvNormAct, SEModule

    from foss_d2.engine.fusion import fuse_activations, prepack_convolutions

    torch.manual_seed(0)
    net = nn.Sequential(
        ConvNormAct(3, 32, 3, act_layer=nn.LeakyReLU, act_kwargs={"negative_slope": 1e-3}), SEModule(32, rd_channels=16)
    )
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
    net.eval()
    fused = copy.deepcopy(net)
    fold_batchnorm(fused)
    prepack_convolutions(fused)
    assert fuse_activations(fused) == 2
    assert fused[0].conv.post_op == "leaky_relu" and fused[0].conv.post_scalars == (1e-3,)
    assert fused[1].fc1.post_op == "relu" and type(fused[1].act) is nn.Identity
    x = torch.randn(2, 3, 12, 10)
    with torch.inference_mode():
        want, got = net(x), fused(x)
    assert len(packed_calls) == 3  # the two fused convs and fc2
    assert torch.allclose(want, got, atol=1e-5)


def test_fused_root_adds_its_shortcut_before_the_relu(packed_calls):
    """timm's DlaRoot with ``shortcut`` (no shipped trunk has one): the first child added inside
    oneDNN's convolution, then ReLU."""
    from timm.models.dla import DlaRoot

    from foss_d2.engine.fusion import FusedRoot, fuse_activations, prepack_convolutions

    torch.manual_seed(0)
    root = DlaRoot(32, 16, 1, shortcut=True)
    root.bn.running_mean.uniform_(-0.5, 0.5)
    root.eval()
    holder = nn.ModuleDict({"root": copy.deepcopy(root)}).eval()
    fold_batchnorm(holder)
    prepack_convolutions(holder)
    assert fuse_activations(holder) == 1 and isinstance(holder["root"], FusedRoot)
    children = [torch.randn(2, 16, 6, 5), torch.randn(2, 16, 6, 5)]
    with torch.inference_mode():
        want, got = root(children), holder["root"](children)
    assert packed_calls == [2]
    assert (want == 0).any() and torch.allclose(want, got, atol=1e-5)


@pytest.mark.parametrize("arch", ["dla34", "dla46_c"])
def test_fuse_activations_in_timms_dla_blocks(packed_calls, arch):
    """timm's DlaBasic (dla34), DlaBottleneck (dla46_c) and DlaRoot become one oneDNN call a conv,
    the ReLUs and the residual sums inside: no ReLU module is left and the trunk answers as before,
    on the prepacked path (two images) and on the plain one (one image on two threads)."""
    import timm

    from foss_d2.engine.fusion import FusedResidualBlock, FusedRoot, fuse_activations, prepack_convolutions

    torch.manual_seed(0)
    trunk = timm.create_model(arch, pretrained=False, features_only=True, out_indices=(2, 3, 4, 5))
    for m in trunk.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    trunk.eval()
    fused = copy.deepcopy(trunk)
    fold_batchnorm(fused)
    prepack_convolutions(fused)
    n = fuse_activations(fused)
    blocks = [m for m in fused.modules() if isinstance(m, (FusedResidualBlock, FusedRoot))]
    assert blocks and any(isinstance(m, FusedRoot) for m in blocks)
    assert n >= len(blocks) and not any(isinstance(m, nn.ReLU) for m in fused.modules())
    for want, got in answers_on_both_paths(packed_calls, trunk, fused, (3, 64, 96)):
        for a, b in zip(want, got):
            assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)


def answers_on_both_paths(packed_calls, model, fused, shape):
    """(model's, fused's) answers on two images on one thread (the prepacked path) and on one image
    on two threads (the plain one), each checked to have taken that path."""
    threads = torch.get_num_threads()
    answers = []
    for batch, t in ((2, 1), (1, 2)):
        torch.set_num_threads(t)
        x = torch.randn(batch, *shape)
        packed_calls.clear()
        try:
            with torch.inference_mode():
                answers.append((model(x), fused(x)))
        finally:
            torch.set_num_threads(threads)
        assert bool(packed_calls) == (batch > 1)
    return answers


def test_fuse_activations_in_timms_tresnet_blocks(packed_calls):
    """timm's TResNet Bottleneck, and a BasicBlock without SE, become FusedShortcutBlocks (the last
    conv adds the shortcut before the ReLU in one oneDNN call); a BasicBlock with SE stays as it is
    (its SE scales the conv's output before the sum). The network answers as before on the
    prepacked path (two images) and on the plain one (one image on two threads)."""
    from timm.models.tresnet import BasicBlock, Bottleneck, TResNet

    from foss_d2.engine.fusion import FusedShortcutBlock, fuse_activations, fusing_works, prepack_convolutions

    if not fusing_works():
        pytest.skip("this PyTorch build runs no post-ops in oneDNN's convolution")
    torch.manual_seed(0)
    tresnet = TResNet(layers=[1, 2, 2, 1], width_factor=0.25, num_classes=0)
    net = nn.Sequential(tresnet.body, BasicBlock(tresnet.num_features, tresnet.num_features, use_se=False))
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):  # (TResNet starts each block's last BatchNorm at weight 0)
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.2, 0.2)
    net.eval()
    blocks = [m for m in net.modules() if isinstance(m, (BasicBlock, Bottleneck))]
    fusable = [m for m in blocks if isinstance(m, Bottleneck) or m.se is None]
    # layers 1-2: BasicBlocks with SE (left as they are); 3-4: Bottlenecks; then one without SE
    assert len(fusable) == 4 and len(blocks) == 7
    fused = copy.deepcopy(net)
    fold_batchnorm(fused)
    prepack_convolutions(fused)
    fuse_activations(fused)
    assert sum(isinstance(m, FusedShortcutBlock) for m in fused.modules()) == len(fusable)
    assert sum(isinstance(m, (BasicBlock, Bottleneck)) for m in fused.modules()) == len(blocks) - len(fusable)
    for want, got in answers_on_both_paths(packed_calls, net, fused, (3, 64, 64)):
        assert torch.allclose(want, got, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("threads", [1, 2])
def test_prepacked_conv_is_packed_for_each_input_shape(packed_calls, capfd, threads):
    """The weight is packed in the layout oneDNN's kernel wants for the input's shape and the
    thread count, so a call after the first runs no reorder of it: packed for no shape in
    particular, a 64-channel 3x3 conv at 28x20 on an AVX2 CPU reordered its weight on every call
    (oneDNN's verbose log names each reorder with the weight's dimensions). Shapes in turn answer
    as the plain conv."""
    from foss_d2.engine.fusion import prepack_convolutions

    torch.set_num_threads(threads)  # put back by conftest
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(64, 64, 3, padding=1)).eval()
    packed = copy.deepcopy(net)
    prepack_convolutions(packed)
    # batches of 2 and more share the weight packed at 2 (up to the age network's 64 crops a call)
    sizes = [(2, 28, 20), (3, 13, 9), (7, 28, 20), (15, 28, 20), (64, 28, 20)] + ([(1, 28, 20)] if threads == 1 else [])
    inputs = [torch.randn(n, 64, h, w) for n, h, w in sizes]
    with torch.inference_mode():
        expected = [net(x) for x in inputs]
        for x, y in zip(inputs, expected):  # the first call of each shape packs the weight
            assert torch.allclose(packed(x), y, atol=1e-4)
        again, log = onednn_exec_log(capfd, lambda: [packed(x) for x in inputs])
    assert packed_calls == [n for n, _, _ in sizes] * 2
    assert all(torch.allclose(z, y, atol=1e-4) for z, y in zip(again, expected))
    assert_convolutions_without_reorders(log, len(sizes))
    f32 = torch.float32
    keys = {(2, 64, 28, 20, threads, f32), (2, 64, 13, 9, threads, f32)} | (
        {(1, 64, 28, 20, 1, f32)} if threads == 1 else set()
    )
    assert set(packed[0]._packs) == keys


def test_prepacked_conv_answers_right_from_two_threads_with_different_shapes(packed_calls):
    """The demo's workers run photos of different sizes through one model at once, one thread
    each: each call packs or reads its own shape's weight while the other thread changes the cache
    (more shapes than ``max_shapes``, so entries are dropped under it), and every answer is the
    plain conv's."""
    import threading

    from foss_d2.engine.fusion import PrepackedConv2d, prepack_convolutions

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(16, 32, 3, padding=1)).eval()
    packed = copy.deepcopy(net)
    prepack_convolutions(packed)
    shapes = [(2, 16, 9 + k, 7 + 2 * k) for k in range(PrepackedConv2d.max_shapes + 2)]
    inputs = [torch.randn(*shape) for shape in shapes]
    with torch.inference_mode():
        expected = [net(x) for x in inputs]
    wrong = []

    def work(order):
        with torch.inference_mode():
            for _ in range(5):
                for i in order:
                    if not torch.allclose(packed(inputs[i]), expected[i], atol=1e-4):
                        wrong.append(i)

    n = len(inputs)
    threads = [threading.Thread(target=work, args=(o,)) for o in (range(n), range(n - 1, -1, -1))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == [] and len(packed_calls) == 2 * 5 * n
    assert len(packed[0]._packs) <= PrepackedConv2d.max_shapes


def test_predictor_prepacks_the_age_network_unless_told_not_to(shipped_cfg, torch_predictor, packed_calls):
    """The shipped model without the mirror average hands the age network demo/family.jpg's 8
    faces in one batch of 8: the prepacked convolutions run, and answer as the plain ones."""
    from foss_d2.engine import FOSSPredictor
    from foss_d2.engine.fusion import PrepackedConv2d

    packed = [m for m in torch_predictor.model.age_head.net.modules() if isinstance(m, PrepackedConv2d)]
    convs = [m for m in torch_predictor.model.age_head.net.modules() if isinstance(m, nn.Conv2d)]
    assert len(packed) == len(convs) > 50
    cfg = shipped_cfg.clone()
    cfg.defrost()
    cfg.MODEL.AGE_HEAD.TEST_FLIP = False
    cfg.MODEL.FOSS.PREPACK_DETECTOR = False  # the age network's calls alone (the detector's: the next test)
    fast = FOSSPredictor(cfg)
    cfg.MODEL.AGE_HEAD.PREPACK = False
    plain = FOSSPredictor(cfg)
    assert not any(isinstance(m, PrepackedConv2d) for m in plain.model.modules())
    packed_calls.clear()  # prepacking_works() tried the op when each predictor loaded
    a = faces_of(plain, FAMILY)
    assert packed_calls == []
    b = faces_of(fast, FAMILY)
    assert len(b) == 8 and packed_calls and set(packed_calls) == {8}
    assert_same_faces(a, b, 1e-3, 1e-3, 1e-5)


def test_predictor_prepacks_the_detector_and_keeps_its_sparse_heads(shipped_cfg, torch_predictor, packed_calls):
    """MODEL.FOSS.PREPACK_DETECTOR: the detector's convolutions of 16 outputs or more are
    prepacked, CenterNet's size and offset heads still run only at the peaks (not densely), and on
    one thread (where a single image takes the prepacked path) demo/family.jpg's faces are the plain
    detector's to float rounding."""
    from foss_d2.engine import FOSSPredictor
    from foss_d2.engine.fusion import PrepackedConv2d
    from foss_d2.proposal_generator.centernet import _point_head

    model = torch_predictor.model
    convs = [m for m in model.backbone.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) > 40 and all(isinstance(m, PrepackedConv2d) for m in convs)
    pg = model.proposal_generator
    assert isinstance(pg.heatmap.upper[0], PrepackedConv2d)
    assert type(pg.heatmap.upper[2]) is nn.Conv2d  # 1 output channel: faster as a plain conv
    assert _point_head(pg.size) is not None and _point_head(pg.offset) is not None
    dense = []
    hooks = [h[0].register_forward_hook(lambda *a: dense.append(1)) for h in (pg.size, pg.offset)]
    cfg = shipped_cfg.clone()
    cfg.defrost()
    cfg.MODEL.FOSS.PREPACK_DETECTOR = False
    plain = FOSSPredictor(cfg)
    assert not any(isinstance(m, PrepackedConv2d) for m in plain.model.backbone.modules())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        a = faces_of(plain, FAMILY)
        packed_calls.clear()
        b = faces_of(torch_predictor, FAMILY)
    finally:
        torch.set_num_threads(threads)
        for h in hooks:
            h.remove()
    assert dense == []
    assert packed_calls.count(1) >= len(convs)  # every backbone conv, one image a call
    assert len(a) == len(b) == 8
    assert_same_faces(a, b, 1e-3, 1e-3, 1e-5)


def test_head_at_points_equals_dense_head():
    torch.manual_seed(0)
    head = _head(16, 32, 2)
    x = torch.randn(2, 16, 9, 11)
    pix = torch.tensor([[0, 10, 98, 50], [5, 44, 33, 88]])  # corners and borders included
    dense = head(x).reshape(2, 2, -1).gather(2, pix.unsqueeze(1).expand(2, 2, 4))
    assert torch.allclose(head_at_points(head, x, pix), dense, atol=1e-5)
    heat, size, off = torch.rand(2, 1, 9, 11), head(x), torch.rand(2, 2, 9, 11)
    boxes, _, _ = decode_centernet(heat, size, off, 4, 4.0)
    _, _, p, xs, ys = top_peaks(heat, 4)
    sparse = peak_boxes(
        head_at_points(head, x, p), off.reshape(2, 2, -1).gather(2, p.unsqueeze(1).expand(2, 2, 4)), xs, ys, 4.0
    )
    assert torch.allclose(boxes, sparse, atol=1e-4)


def _hand_head():
    """A heatmap head on one input channel whose 3x3 conv reads only the centre pixel: hidden
    channel c is relu(a_c x + b_c) with a = (1, 1, 2, -1), b = (0, -1, 0, 1); the logit is
    -1 + 2 h0 - 1 h1 - 3 h2 + 0.5 h3."""
    head = _head(1, 4, 1)
    with torch.no_grad():
        head[0].weight.zero_()
        head[0].weight[:, 0, 1, 1] = torch.tensor([1.0, 1.0, 2.0, -1.0])
        head[0].bias.copy_(torch.tensor([0.0, -1.0, 0.0, 1.0]))
        head[2].weight.copy_(torch.tensor([2.0, -1.0, -3.0, 0.5]).view(1, 4, 1, 1))
        head[2].bias.fill_(-1.0)
    return head


def test_bounded_heatmap_head_by_hand():
    """The positive-weight channels (0 and 3) run everywhere, giving an upper bound of the logit;
    the negative ones only where that bound clears the floor. For x = 2: h = (2, 1, 4, 0), logit
    -1 + 4 - 1 - 12 = -10, bound -1 + 4 = 3. For x = -1: h = (0, 0, 0, 2), logit = bound = 0. For
    x = 0.5: h = (0.5, 0, 1, 0.5), logit -1 + 1 - 3 + 0.25 = -2.75, bound 0.25."""
    from foss_d2.proposal_generator.centernet import BoundedHeatmapHead

    head = _hand_head()
    bounded = BoundedHeatmapHead(head, block=1)
    bounded.dense_above = 1.0  # the rest at the pixels that clear the floor, however many of the 3
    assert bounded.upper[0].out_channels == 2 and bounded.rest[0].out_channels == 2
    assert bounded.upper[2].weight.view(-1).tolist() == [2.0, 0.5]  # by weight, largest first
    assert bounded.rest[2].weight.view(-1).tolist() == [-3.0, -1.0] and bounded.rest[2].bias is None
    x = torch.tensor([2.0, -1.0, 0.5]).view(1, 1, 1, 3)
    assert head(x).view(-1).tolist() == [-10.0, 0.0, -2.75]
    assert bounded(x).view(-1).tolist() == [-10.0, 0.0, -2.75]  # no floor: every pixel exact
    # floor 0.5 (logit 0): the bounds 3 and 0.25 clear it, 0 does not (and is left as the bound)
    assert bounded(x, 0.5).view(-1).tolist() == [-10.0, 0.0, -2.75]
    # floor 0.6 (logit 0.405): only x = 2's bound clears it; x = 0.5 keeps its bound 0.25 (<= floor)
    assert bounded(x, 0.6).view(-1).tolist() == [-10.0, 0.0, 0.25]
    # where more than dense_above of the pixels clear the floor (here 1 of 3), the rest runs densely
    bounded.dense_above = 0.3
    assert bounded(x, 0.6).view(-1).tolist() == [-10.0, 0.0, -2.75]
    # blocks of 4: the most negative channel (-3) joins the upper part, tightening the bound
    padded = BoundedHeatmapHead(head, block=4)
    assert padded.rest is None and padded(x, 0.9).view(-1).tolist() == [-10.0, 0.0, -2.75]
    # blocks of 3: channel 2 (-3) joins them: x = 2's bound is -1 + 4 - 12 = -9, under the floor, so
    # it stays -9; x = 0.5's bound -2.75 is its logit (h1 = 0)
    three = BoundedHeatmapHead(head, block=3)
    three.dense_above = 1.0
    assert three.upper[2].weight.view(-1).tolist() == [2.0, 0.5, -3.0]
    assert three(x, 0.6).view(-1).tolist() == [-9.0, 0.0, -2.75]
    with pytest.raises(ValueError, match="one-class"):
        BoundedHeatmapHead(_head(1, 4, 2))  # two classes
    # no floor, or one of 0: every pixel exact; a floor of 1: every pixel left at its bound (no
    # score exceeds 1)
    assert bounded(x, 0.0).view(-1).tolist() == [-10.0, 0.0, -2.75]
    assert bounded(x, 1.0).view(-1).tolist() == [3.0, 0.0, 0.25]


def test_bounded_heatmap_head_without_positive_weights():
    """A head whose 1x1 weights are all negative bounds its logit by the bias alone: its upper part
    is still one block (the most negative channels), and its answers are the head's."""
    from foss_d2.proposal_generator.centernet import BoundedHeatmapHead

    head = _hand_head()
    with torch.no_grad():
        head[2].weight.copy_(torch.tensor([-2.0, -1.0, -3.0, -0.5]).view(1, 4, 1, 1))
        head[2].bias.fill_(1.0)
    x = torch.tensor([2.0, -1.0, 0.5]).view(1, 1, 1, 3)
    bounded = BoundedHeatmapHead(head, block=2)
    bounded.dense_above = 1.0
    assert bounded.upper[2].weight.view(-1).tolist() == [-3.0, -2.0]  # the most negative first
    # h = (2, 1, 4, 0) -> 1 - 4 - 1 - 12 = -16; (0, 0, 0, 2) -> 1 - 1 = 0; (0.5, 0, 1, 0.5) -> -3.25
    assert head(x).view(-1).tolist() == [-16.0, 0.0, -3.25]
    assert bounded(x).view(-1).tolist() == [-16.0, 0.0, -3.25]
    # at 0.2 (logit -1.39) the bounds 1 - 12 - 4 = -15 and 1 - 3 - 1 = -3 stay (under it), x = -1's
    # bound 1 clears it and gets its logit 0
    assert bounded(x, 0.2).view(-1).tolist() == [-15.0, 0.0, -3.0]


def test_splitting_a_head_leaves_the_random_state_alone():
    """Bounding a model's heatmap head for inference draws no random numbers: a seeded run that
    optimizes a model halfway draws the same numbers afterwards."""
    from foss_d2.proposal_generator.centernet import BoundedHeatmapHead

    head = _head(8, 32, 1)
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    BoundedHeatmapHead(head)
    assert torch.equal(torch.rand(3), expected)


def test_bounded_heatmap_keeps_every_peak_above_the_floor():
    """On a random head and feature map, the peaks CenterNet decodes above min_score are those of the
    dense head, and the logits the bounded head leaves inexact are all at most the floor."""
    from foss_d2.proposal_generator.centernet import BoundedHeatmapHead

    torch.manual_seed(0)
    head = _head(8, 32, 1)
    x = torch.randn(3, 8, 20, 24)
    with torch.no_grad():
        head[2].bias.fill_(-1.5)
        dense = head(x)
        floor = 0.3
        bounded = BoundedHeatmapHead(head, block=1)(x, floor)
        logit = np.log(floor / (1 - floor))
        exact = (bounded - dense).abs() < 1e-5
        assert bool((dense[~exact] <= logit).all()) and bool((bounded[~exact] <= logit + 1e-6).all())
        assert 0 < int((dense > logit).sum()) and bool(exact[dense > logit].all())
        assert int((~exact).sum()) > 100  # the floor did skip work
        peaks = []
        for heat in (dense, bounded):
            scores, _, pix, _, _ = top_peaks(heat.sigmoid(), 50)
            above = scores > floor
            peaks.append(sorted(zip(above.nonzero()[:, 0].tolist(), pix[above].tolist())))
        assert peaks[0] == peaks[1] and len(peaks[0]) >= 3


def test_bounded_heatmap_on_the_shipped_detector(shipped_cfg, torch_predictor):
    """MODEL.CENTERNET.HEATMAP_BOUND: the shipped detector's heatmap head is split (118 of its 256
    1x1 weights are positive: 128 channels with the padding run everywhere) and demo/family.jpg's
    faces are those of the unsplit head."""
    from foss_d2.engine import FOSSPredictor
    from foss_d2.proposal_generator.centernet import BoundedHeatmapHead

    pg = torch_predictor.model.proposal_generator
    assert isinstance(pg.heatmap, BoundedHeatmapHead)
    assert pg.heatmap.upper[0].out_channels == 128 and pg.heatmap.rest[0].out_channels == 128
    assert int((pg.heatmap.upper[2].weight > 0).sum()) == 118
    cfg = shipped_cfg.clone()
    cfg.defrost()
    cfg.MODEL.CENTERNET.HEATMAP_BOUND = False
    plain = FOSSPredictor(cfg)
    assert isinstance(plain.model.proposal_generator.heatmap, nn.Sequential)
    a, b = faces_of(plain, FAMILY), faces_of(torch_predictor, FAMILY)
    assert len(a) == 8
    assert_same_faces(a, b, 1e-4, 1e-4, 1e-6)


def test_det_input_fit_small():
    from conftest import tiny_cfg

    from detectron2.modeling import build_model

    cfg = tiny_cfg()
    cfg.MODEL.FOSS.DET_INPUT_SIZE = 480
    model = build_model(cfg).eval()
    small, big = torch.zeros(3, 200, 150, dtype=torch.uint8), torch.zeros(3, 600, 900, dtype=torch.uint8)
    assert model.test_input_size([small]) == 480  # off: the paper's fixed size
    model.det_input_fit_small = True
    assert model.test_input_size([small]) == 224
    assert model.test_input_size([big]) == 480
    assert model.test_input_size([small, big]) == 480


@pytest.fixture(scope="module")
def torch_predictor(shipped_cfg):
    from foss_d2.engine import FOSSPredictor

    return FOSSPredictor(shipped_cfg)


def faces_of(predictor, path):
    from foss_d2.engine.api import instances_to_faces

    return instances_to_faces(predictor(path))


def assert_same_faces(a, b, box_tol, age_tol, p_tol):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert max(abs(u - v) for u, v in zip(x["box"], y["box"])) <= box_tol
        assert abs(x["age"] - y["age"]) <= age_tol
        assert abs(x["age_std"] - y["age_std"]) <= age_tol + 0.01  # (age_std rounded to 0.01)
        assert abs(x["p_female"] - y["p_female"]) <= p_tol


def test_optimized_shipped_model_answers_as_trained(shipped_cfg, torch_predictor):
    """Folded BatchNorms, channels-last weights and sparse heads against the model as trained."""
    from foss_d2.engine import FOSSPredictor

    plain = FOSSPredictor(shipped_cfg, optimize=False)
    plain.model.proposal_generator.sparse_test = False
    fast = torch_predictor
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.model.modules())
    a, b = faces_of(plain, FAMILY), faces_of(fast, FAMILY)
    assert len(a) >= 5
    assert_same_faces(a, b, 0.02, 0.02, 0.001)


# ---------------------------------------------------------------- bfloat16 age network


def test_inference_dtype_checks_and_falls_back(monkeypatch):
    from foss_d2.config import get_foss_cfg
    from foss_d2.utils import precision

    with pytest.raises(ValueError, match="INFERENCE_DTYPE"):
        precision.check_dtype("float16")
    with pytest.raises(ValueError, match="INFERENCE_DTYPE"):
        get_foss_cfg(opts=["MODEL.AGE_HEAD.INFERENCE_DTYPE", "half"])
    with pytest.raises(ValueError, match="MODEL.FOSS.DET_INFERENCE_DTYPE"):
        get_foss_cfg(opts=["MODEL.FOSS.DET_INFERENCE_DTYPE", "float16"])
    cpu = torch.device("cpu")
    with precision.inference_autocast("float32", cpu):
        assert not torch.is_autocast_enabled("cpu")
    monkeypatch.setattr(precision, "native_bf16", lambda device_type: False)
    with precision.inference_autocast("bfloat16", cpu):
        assert not torch.is_autocast_enabled("cpu")  # emulated bfloat16 would be slower: float32
    monkeypatch.setattr(precision, "native_bf16", lambda device_type: True)
    with precision.inference_autocast("bfloat16", cpu):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16


def test_bfloat16_age_network_at_test_time_only(monkeypatch):
    from conftest import tiny_cfg

    from foss_d2.utils import precision

    from detectron2.modeling import build_model

    monkeypatch.setattr(precision, "native_bf16", lambda device_type: True)
    torch.manual_seed(0)
    model = build_model(tiny_cfg(**{"MODEL.AGE_HEAD.INFERENCE_DTYPE": "bfloat16"}))
    head = model.age_head
    channels = model.backbone.output_shape()[head.in_feature].channels
    crops, feat = torch.rand(3, 3, *head.crop_hw), torch.randn(3, channels, *head.feature_hw)
    with torch.no_grad():
        head.train()  # training keeps float32: the same numbers as the network itself
        answers = []
        for run in (head.run_net, head.net):
            torch.manual_seed(1)  # the same dropout
            answers.append(run(crops, feat)[0])
        assert torch.equal(*answers)
        head.eval()
        (age, gender), (age32, _) = head.run_net(crops, feat), head.net(crops, feat)
        # float32 out, bfloat16 inside: close to the float32 network, not equal to it
        assert age.dtype == gender.dtype == torch.float32
        err = float((age - age32).norm() / age32.norm())
        assert 0 < err < 0.05, err


def test_heatmap_head_dense_conv_in_the_detectors_inference_dtype(monkeypatch):
    """MODEL.FOSS.DET_INFERENCE_DTYPE bfloat16: at test time the heatmap head's 3x3 conv runs in
    bfloat16, its 1x1 conv and the logits in float32 (plain head and ``BoundedHeatmapHead``, with
    and without a floor); the detector's calls in training (a frozen detector too) and with
    autograd keep float32."""
    from conftest import tiny_cfg

    from foss_d2.utils import precision

    from detectron2.modeling import build_model
    from detectron2.structures import Boxes, Instances

    monkeypatch.setattr(precision, "native_bf16", lambda device_type: True)
    torch.manual_seed(0)
    model = build_model(
        tiny_cfg(**{"MODEL.FOSS.DET_INFERENCE_DTYPE": "bfloat16", "MODEL.FOSS.FREEZE_DETECTOR": True})
    ).eval()
    det = model.proposal_generator
    c = model.backbone.output_shape()[det.in_feature].channels
    feats = {det.in_feature: torch.randn(1, c, 20, 24)}
    seen = []

    def watch(conv3x3):
        return conv3x3.register_forward_hook(lambda m, i, o: seen.append(o.dtype))

    hook = watch(det.heatmap[0])
    with torch.no_grad():
        low, full = det.heat_logits(feats, dtype="bfloat16"), det.heat_logits(feats)
    assert seen == [torch.bfloat16, torch.float32] and low.dtype == torch.float32
    err = float((low - full).norm() / full.norm())
    assert 0 < err < 0.05, err
    det.heat_logits(feats, dtype="bfloat16")  # autograd on
    assert seen[-1] == torch.float32
    image = torch.randint(0, 256, (3, 64, 80), dtype=torch.uint8)
    seen.clear()
    with torch.no_grad():
        model.detect_pass([image])  # the model's own test-time pass
    assert seen == [torch.bfloat16]
    model.train()  # the frozen detector stays in eval; its proposals for the age network in float32
    assert not det.training
    seen.clear()
    inst = Instances((64, 80), gt_boxes=Boxes(torch.tensor([[10.0, 10.0, 40.0, 50.0]])))
    inst.gt_classes = torch.zeros(1, dtype=torch.long)
    model([{"image": image, "instances": inst}])
    assert seen and set(seen) == {torch.float32}
    hook.remove()
    model.eval()
    assert det.bound_heatmap()
    hook = watch(det.heatmap.upper[0])
    seen.clear()
    assert det.heatmap.rest is not None
    with torch.no_grad():
        ref = det.heat_logits(feats, None, dtype="bfloat16")  # every pixel exact
        # 5% of the pixels above (an untrained head: scores near its prior): the rest runs at points
        floor = float(ref.flatten().quantile(0.95))
        got = det.heat_logits(feats, 1 / (1 + math.exp(-floor)), dtype="bfloat16")
    hook.remove()
    assert seen == [torch.bfloat16] * 2
    assert torch.allclose(ref, low, atol=0.02)  # the same head split in two
    exact = got > floor
    assert exact.any() and not exact.all()
    assert torch.allclose(got[exact], ref[exact], atol=1e-5)
    assert (got[~exact] >= ref[~exact] - 1e-5).all() and (got[~exact] <= floor).all()  # the bound


def test_bfloat16_shipped_model_finds_the_same_faces(shipped_cfg, torch_predictor, monkeypatch):
    """The shipped model's answers on demo/family.jpg with the age network in bfloat16: the same
    faces and boxes, ages within 0.75 years, P(female) within 0.01 (measured on 2026-12-05: 0.53 years
    for the box on a guitar neck, 0.23 or less for the faces; 0.0036)."""
    from foss_d2.engine import FOSSPredictor
    from foss_d2.utils import precision

    monkeypatch.setattr(precision, "native_bf16", lambda device_type: True)
    cfg = shipped_cfg.clone()
    cfg.defrost()
    cfg.MODEL.AGE_HEAD.INFERENCE_DTYPE = "bfloat16"
    a, b = faces_of(torch_predictor, FAMILY), faces_of(FOSSPredictor(cfg), FAMILY)
    assert len(a) >= 7
    assert [x["box"] for x in a] == [x["box"] for x in b]  # the detector is float32 either way
    assert_same_faces(a, b, 0.0, 0.75, 0.01)
    assert a != b  # bfloat16 did run


# ---------------------------------------------------------------- ONNX export and runtime backend


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory, shipped_cfg):
    """The shipped model exported once by the CLI, placed where the backend's cache looks for it."""
    pytest.importorskip("onnxruntime")
    from foss_d2.apps.export import main as export_main
    from foss_d2.engine.onnx_backend import AGE_NET_FILE, DETECTOR_FILE, default_onnx_dir

    root = tmp_path_factory.mktemp("foss_cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("FOSS_D2_CACHE", str(root))
    out = default_onnx_dir(shipped_cfg)
    export_main([shipped_cfg.MODEL.WEIGHTS, out, "--format", "onnx"])
    assert os.path.isfile(os.path.join(out, DETECTOR_FILE)) and os.path.isfile(os.path.join(out, AGE_NET_FILE))
    yield out
    mp.undo()


def real_photos():
    photos = [FAMILY]
    if os.path.isdir(shared_data_path("widerface")):
        wider = sorted(glob.glob(shared_data_path("widerface", "WIDER_val", "images", "*", "*.jpg")))
        utk = sorted(glob.glob(shared_data_path("utkface", "UTKFace", "*.jpg")))
        assert len(wider) > 3 and len(utk) > 100, "../shared/data's WIDER FACE val or UTKFace photos not found"
        photos += wider[3:4] + utk[100:101]
    return photos


@pytest.fixture(scope="module")
def ort_predictor(onnx_cache, shipped_cfg):
    from foss_d2.engine import FOSSPredictor

    return FOSSPredictor(shipped_cfg, backend="onnxruntime", onnx_dir=onnx_cache)


@pytest.mark.parametrize("path", real_photos(), ids=os.path.basename)
def test_onnxruntime_backend_answers_as_pytorch(torch_predictor, ort_predictor, path):
    torch_faces = faces_of(torch_predictor, path)
    ort_faces = faces_of(ort_predictor, path)
    assert torch_faces
    assert_same_faces(torch_faces, ort_faces, 0.5, 0.1, 0.005)
    # the reported std is the graph's distribution's times the shipped AGE_STD_SCALE (1.6), once
    inst = ort_predictor(path)
    probs, years = inst.pred_age_probs.double(), torch.arange(101, dtype=torch.float64)
    own = (probs * (years - (probs * years).sum(1, keepdim=True)) ** 2).sum(1).sqrt()
    assert ort_predictor.cfg.MODEL.AGE_HEAD.AGE_STD_SCALE == 1.6
    assert torch.allclose(inst.pred_age_stds.double(), 1.6 * own, atol=1e-3)


def test_onnx_detector_graph_holds_the_heatmap_bound(onnx_cache, shipped_cfg, ort_predictor, tmp_path):
    """With MODEL.CENTERNET.HEATMAP_BOUND the detector graph ends in the bound's upper part
    ("heat_upper") and the other 128 channels run in PyTorch; a graph exported without it ("heat":
    also every graph exported before) gives the same faces."""
    import onnx

    from foss_d2.engine import FOSSPredictor
    from foss_d2.engine.onnx_backend import DETECTOR_FILE, export_onnx
    from foss_d2.engine.predictor import load_all_weights

    from detectron2.modeling import build_model

    def graph_outputs(folder):
        return [o.name for o in onnx.load(os.path.join(folder, DETECTOR_FILE)).graph.output]

    assert graph_outputs(onnx_cache) == ["dla_up", "dla_out", "heat_upper"]
    pg = ort_predictor.model.proposal_generator
    assert pg.heatmap.upper is None and pg.heatmap.rest[0].out_channels == 128
    cfg = shipped_cfg.clone()
    cfg.defrost()
    cfg.MODEL.CENTERNET.HEATMAP_BOUND = False
    model = build_model(cfg)
    load_all_weights(model, cfg.MODEL.WEIGHTS)
    export_onnx(model, str(tmp_path))
    assert graph_outputs(tmp_path) == ["dla_up", "dla_out", "heat"]
    whole = FOSSPredictor(shipped_cfg, backend="onnxruntime", onnx_dir=str(tmp_path))
    assert whole.model.proposal_generator.heatmap is None
    a, b = faces_of(whole, FAMILY), faces_of(ort_predictor, FAMILY)
    assert len(a) == 8
    assert_same_faces(a, b, 1e-3, 1e-3, 1e-5)


def test_onnxruntime_predictor_copies_and_pickles(ort_predictor):
    """The sessions could not be pickled: an onnxruntime predictor broke copy.deepcopy, joblib and
    spawn-based multiprocessing, which the PyTorch one passes. They pickle as their graphs' paths
    and open again; the copy answers the same."""
    import copy
    import pickle

    ref = faces_of(ort_predictor, FAMILY)
    for again in (copy.deepcopy(ort_predictor), pickle.loads(pickle.dumps(ort_predictor))):
        assert_same_faces(ref, faces_of(again, FAMILY), 0.0, 0.0, 0.0)


def test_a_predictor_without_weights_says_it_is_untrained(shipped_cfg):
    """The shipped YAML names no weights: merged alone into a config, FOSSPredictor ran a random
    model without a word (0 to 78 faces from run to run)."""
    from foss_d2.engine import FOSSPredictor

    cfg = shipped_cfg.clone()
    cfg.defrost()
    cfg.MODEL.WEIGHTS = ""
    with pytest.warns(UserWarning, match="MODEL.WEIGHTS is empty, the model is untrained"):
        FOSSPredictor(cfg)


def test_onnxruntime_sessions_do_not_spin(ort_predictor):
    """Both graphs' thread pools sleep after a run instead of busy-waiting: PyTorch's crops and
    peak decoding run between them on the same cores (RESULTS.md at 58d4fa8, section 9, "Threads")."""
    sessions = [m.session for m in ort_predictor.model.modules() if hasattr(m, "session")]
    assert len(sessions) == 2
    for session in sessions:
        options = session.get_session_options()
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
        assert options.intra_op_num_threads == torch.get_num_threads()


def test_the_peers_sessions_do_not_spin_either(monkeypatch):
    """The peer benchmark's sessions (tools/peer/run_peer.py) sleep after a run too: timed in the
    same rounds, the peer's spinning pool held the second core from the models timed after it
    (RESULTS.md at 58d4fa8, section 10, "Issue 19's ratios on more photos, and the peer's spinning threads")."""
    import importlib.util

    ort = pytest.importorskip("onnxruntime")
    seen = []

    class Recorder:
        def __init__(self, model, sess_options=None, *args, **kwargs):
            seen.append(sess_options)

    monkeypatch.setattr(ort, "InferenceSession", Recorder)
    spec = importlib.util.spec_from_file_location("run_peer", os.path.join(REPO, "tools", "peer", "run_peer.py"))
    run_peer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run_peer)
    threads = cv2.getNumThreads()
    try:
        run_peer.limit_threads(2)
    finally:
        cv2.setNumThreads(threads)  # (limit_threads sets OpenCV's too, for the whole process)
    ort.InferenceSession("model.onnx")  # as the peer's packages create theirs
    (options,) = seen
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.intra_op_num_threads == 2 and options.inter_op_num_threads == 1


def test_onnx_dir_must_hold_graphs_of_these_weights(onnx_cache, shipped_cfg, tmp_path):
    """An --onnx-dir is run only with the weights its graphs came from: another checkpoint's graphs,
    a missing folder (a typo for the int8 one) or a half-written one are refused, not re-exported."""
    from foss_d2.engine import FOSSPredictor
    from foss_d2.engine.onnx_backend import DETECTOR_FILE, FINGERPRINT_FILE

    assert os.path.isfile(os.path.join(onnx_cache, FINGERPRINT_FILE))
    ckpt = torch.load(shipped_cfg.MODEL.WEIGHTS, map_location="cpu", weights_only=False)
    name = next(k for k in ckpt["model"] if k.startswith("age_head.") and k.endswith("weight"))
    ckpt["model"][name] = ckpt["model"][name] + 0.01  # other weights, same architecture
    torch.save(ckpt, tmp_path / "other.pth")
    other = shipped_cfg.clone()
    other.defrost()
    other.MODEL.WEIGHTS = str(tmp_path / "other.pth")
    with pytest.raises(ValueError, match="exported from other weights"):
        FOSSPredictor(other, backend="onnxruntime", onnx_dir=onnx_cache)
    with pytest.raises(ValueError, match="holds no detector.onnx, age_net.onnx"):
        FOSSPredictor(shipped_cfg, backend="onnxruntime", onnx_dir=str(tmp_path / "typo"))
    half = tmp_path / "half"
    half.mkdir()
    os.link(os.path.join(onnx_cache, DETECTOR_FILE), half / DETECTOR_FILE)
    with pytest.raises(ValueError, match="holds no age_net.onnx"):
        FOSSPredictor(shipped_cfg, backend="onnxruntime", onnx_dir=str(half))
    assert sorted(os.listdir(half)) == [DETECTOR_FILE]  # nothing exported into the user's folder


def test_onnx_cache_is_one_export_per_model_and_mends_a_damaged_graph(onnx_cache, shipped_cfg, tmp_path, monkeypatch):
    """The threshold and the presets change nothing in the graphs: one cache folder for all of them
    (it was one export each, 36 MB a time); a key that shapes a graph gets its own. A damaged graph
    in the cache is exported again; in a user's --onnx-dir it is a one-line error."""
    from foss_d2.config import get_foss_cfg
    from foss_d2.engine import FOSSPredictor
    from foss_d2.engine.api import PRESETS
    from foss_d2.engine.onnx_backend import AGE_NET_FILE, DETECTOR_FILE, default_onnx_dir

    variants = [get_foss_cfg(device="cpu", confidence_threshold=0.4)]
    variants += [get_foss_cfg(device="cpu", opts=PRESETS[p]) for p in PRESETS]
    variants += [get_foss_cfg(device="cpu", opts=["MODEL.FOSS.K_TEST", "5", "MODEL.CENTERNET.TEST_FLIP", "True"])]
    assert {default_onnx_dir(c) for c in variants} == {onnx_cache}
    assert shipped_cfg.MODEL.CENTERNET.HEATMAP_BOUND and not shipped_cfg.MODEL.AGE_HEAD.ZERO_FEATURE
    for key, value in (("MODEL.CENTERNET.HEATMAP_BOUND", "False"), ("MODEL.AGE_HEAD.ZERO_FEATURE", "True")):
        assert default_onnx_dir(get_foss_cfg(device="cpu", opts=[key, value])) != onnx_cache

    broken = tmp_path / "broken"
    broken.mkdir()
    for name in os.listdir(onnx_cache):
        shutil.copy(os.path.join(onnx_cache, name), broken / name)
    data = (broken / DETECTOR_FILE).read_bytes()
    (broken / DETECTOR_FILE).write_bytes(data[: len(data) // 10])  # a copy cut short
    with pytest.raises(ValueError, match="detector.onnx is not a readable ONNX graph .*: export it again"):
        FOSSPredictor(shipped_cfg, backend="onnxruntime", onnx_dir=str(broken))
    assert (broken / DETECTOR_FILE).stat().st_size == len(data) // 10  # the user's folder left alone

    monkeypatch.setenv("FOSS_D2_CACHE", str(tmp_path / "cache"))
    cached = default_onnx_dir(shipped_cfg)
    shutil.copytree(broken, cached)
    ort = FOSSPredictor(shipped_cfg, backend="onnxruntime")
    assert (tmp_path / "cache" / "onnx").exists() and len(os.listdir(tmp_path / "cache" / "onnx")) == 1
    assert os.path.getsize(os.path.join(cached, DETECTOR_FILE)) == len(data)  # exported again
    size = os.path.getsize
    assert size(os.path.join(cached, AGE_NET_FILE)) == size(os.path.join(onnx_cache, AGE_NET_FILE))
    assert len(ort(cv2.imread(FAMILY))) == 8


def test_onnx_graphs_that_fail_to_export_or_load_leave_nothing_and_say_why(shipped_cfg, tmp_path, monkeypatch, capsys):
    """An export that fails leaves no half-written graph nor an empty folder; graphs the cache has just
    exported that onnxruntime cannot load are a version question, not "export it again"."""
    import foss_d2.engine.onnx_backend as ob
    from foss_d2.apps.export import main as export_main
    from foss_d2.engine import FOSSPredictor

    def broken_export(module, inputs, path, **kwargs):
        open(path, "wb").write(b"half a graph")
        raise RuntimeError("exporter failed")

    monkeypatch.setattr(ob.torch.onnx, "export", broken_export)
    with pytest.raises(RuntimeError, match="exporter failed"):
        export_main([shipped_cfg.MODEL.WEIGHTS, str(tmp_path / "graphs"), "--format", "onnx"])
    assert not (tmp_path / "graphs").exists()
    monkeypatch.undo()

    def unloadable(path, threads):
        raise ValueError(f"{path} is not a readable ONNX graph (opset too new)")

    monkeypatch.setenv("FOSS_D2_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(ob, "_open_session", unloadable)
    with pytest.raises(ValueError, match="exported just now by torch .* does this onnxruntime read opset 17"):
        FOSSPredictor(shipped_cfg, backend="onnxruntime")


def test_weights_that_leave_the_model_untrained_are_refused(shipped_cfg, tmp_path):
    """A detector-only export or a file that is no checkpoint: a one-line error, not random ages."""
    from foss_d2.apps.demo import main as demo_main
    from foss_d2.apps.export import main as export_main
    from foss_d2.engine import FOSSPredictor

    export_main([shipped_cfg.MODEL.WEIGHTS, str(tmp_path / "det.pth"), "--detector-only"])
    det_only = shipped_cfg.clone()
    det_only.defrost()
    det_only.MODEL.WEIGHTS = str(tmp_path / "det.pth")
    with pytest.raises(ValueError, match=r"no weights for \d+ of the model's tensors, in age_head \(a detector-only"):
        FOSSPredictor(det_only)
    (tmp_path / "notes.txt").write_text("not a checkpoint\n")
    with pytest.raises(SystemExit, match="notes.txt is not a model checkpoint"):
        demo_main(["--input", FAMILY, "--output", str(tmp_path / "o"), "MODEL.WEIGHTS", str(tmp_path / "notes.txt")])
    assert not (tmp_path / "o" / "predictions.json").exists()


def test_onnxruntime_backend_flip_test_and_api(onnx_cache, torch_predictor):
    """The backend switch of FaceAgeEstimator, and the dense head path (the detector flip test)."""
    from foss_d2 import FaceAgeEstimator
    from foss_d2.config import get_foss_cfg
    from foss_d2.engine import FOSSPredictor

    est = FaceAgeEstimator(backend="onnxruntime")  # the shipped graphs, found in the cache
    assert est.predictor.backend == "onnxruntime"
    assert_same_faces(faces_of(torch_predictor, FAMILY), est(FAMILY), 0.5, 0.1, 0.005)
    # the fast preset's bfloat16 is PyTorch's: the float32 graph answers as float32 PyTorch does
    fast = FaceAgeEstimator(preset="fast", backend="onnxruntime")
    assert fast.predictor.model.age_head.inference_dtype == fast.predictor.model.det_inference_dtype == "float32"
    fast32 = FaceAgeEstimator(
        preset="fast", opts=["MODEL.AGE_HEAD.INFERENCE_DTYPE", "float32", "MODEL.FOSS.DET_INFERENCE_DTYPE", "float32"]
    )
    assert_same_faces(fast32(FAMILY), fast(FAMILY), 0.5, 0.1, 0.005)
    flip_cfg = get_foss_cfg(device="cpu", opts=["MODEL.CENTERNET.TEST_FLIP", "True"])
    ref = faces_of(FOSSPredictor(flip_cfg), FAMILY)
    assert_same_faces(
        ref, faces_of(FOSSPredictor(flip_cfg, backend="onnxruntime", onnx_dir=onnx_cache), FAMILY), 0.5, 0.1, 0.005
    )


def test_onnxruntime_map_opens_one_thread_sessions_once(onnx_cache):
    """est.map with the onnxruntime backend on 2 threads: two photos in the model at once, each on
    sessions opened with one thread (the estimator's own keep their two), the same ones on the next
    call; the answers those of est(photo) within float noise, in input order."""
    from foss_d2 import FaceAgeEstimator

    torch.set_num_threads(2)
    est = FaceAgeEstimator(backend="onnxruntime")
    photos = real_photos()
    mirrored = cv2.flip(cv2.imread(FAMILY), 1)
    results = list(est.map([*photos, mirrored]))
    assert [r.index for r in results] == list(range(len(photos) + 1)) and all(r.error is None for r in results)
    for r, image in zip(results, [*photos, mirrored]):
        assert_same_faces(est(image), r.faces, 1e-3, 1e-3, 1e-5)
    (one_thread,) = est._predictors_by_threads.values()
    assert list(est._predictors_by_threads) == [1]

    def threads_of(predictor):
        return [
            m.session.get_session_options().intra_op_num_threads
            for m in predictor.model.modules()
            if hasattr(m, "session")
        ]

    assert threads_of(one_thread) == [1, 1] and threads_of(est.predictor) == [2, 2]
    list(est.map(photos[:1]))
    assert est._predictors_by_threads == {1: one_thread}
    assert [len(r.faces) for r in est.map(photos[:1], workers=1)] == [len(results[0].faces)]
    assert list(est._predictors_by_threads) == [1]  # one at a time: the estimator's own sessions


def test_demo_backend_switch(onnx_cache, tmp_path):
    import json

    from foss_d2.apps.demo import main as demo_main

    demo_main(["--input", FAMILY, "--output", str(tmp_path / "out"), "--no-draw", "--backend", "onnxruntime"])
    faces = json.load(open(tmp_path / "out" / "predictions.json"))
    assert len(next(iter(faces.values()))) >= 5


def test_int8_export_finds_the_same_faces(onnx_cache, shipped_cfg, ort_predictor, tmp_path):
    """--int8: convolutions quantised (QDQ nodes in both graphs, files ~3x smaller), and on the
    family photo the same faces as float: each float face has an int8 box of IoU > 0.8 and
    P(female) within 0.15, and the ages move by under 2 years at the median, 10 at most (int8
    moves a face's age by 0.5 years at the median on 24 WIDER photos; how far one face moves
    depends on the host's int8 kernels: on an AVX2-only CPU one girl's box moved to IoU 0.83 and
    her age by 7.8 years, the median 1.0, 2026-12-03)."""
    pytest.importorskip("onnxruntime")
    import onnx

    from foss_d2.apps.export import main as export_main
    from foss_d2.engine import FOSSPredictor
    from foss_d2.engine.onnx_backend import AGE_NET_FILE, DETECTOR_FILE

    out = tmp_path / "int8"
    export_main([shipped_cfg.MODEL.WEIGHTS, str(out), "--format", "onnx", "--int8", "--calibration", FAMILY])
    for name in (DETECTOR_FILE, AGE_NET_FILE):
        ops = {n.op_type for n in onnx.load(str(out / name)).graph.node}
        assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops, name
        assert os.path.getsize(out / name) < os.path.getsize(os.path.join(onnx_cache, name)) / 2.5
    int8 = faces_of(FOSSPredictor(shipped_cfg, backend="onnxruntime", onnx_dir=str(out)), FAMILY)
    ref = faces_of(ort_predictor, FAMILY)
    assert abs(len(int8) - len(ref)) <= 1
    age_moves = []
    for face in ref:
        iou, other = max(((box_iou(face["box"], f["box"]), f) for f in int8), key=lambda t: t[0])
        assert iou > 0.8
        age_moves.append(abs(face["age"] - other["age"]))
        assert abs(face["p_female"] - other["p_female"]) < 0.15
    assert np.median(age_moves) < 2 and max(age_moves) < 10, age_moves


def box_iou(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_calibration_sample_is_even_across_arguments():
    """--calibration group_photos/ portraits/: as many of each (the detector's activations differ),
    seeded; a group with fewer files gives all of them."""
    from foss_d2.engine.quantize import sample_calibration_files

    groups = [[f"g{i:02d}.jpg" for i in range(20)], ["p1.jpg", "p2.jpg"]]
    picked = sample_calibration_files(groups, 8)
    assert len([f for f in picked if f.startswith("g")]) == 4 and picked[-2:] == ["p1.jpg", "p2.jpg"]
    assert picked == sample_calibration_files(groups, 8)  # seeded
    assert sample_calibration_files([groups[0]], 30) == groups[0]


def test_int8_needs_calibration_and_onnx(tmp_path, shipped_cfg):
    from foss_d2.apps.export import main as export_main

    for argv in (
        ["--format", "onnx", "--int8"],
        ["--int8", "--calibration", FAMILY],
        ["--format", "onnx", "--int8", "--calibration", FAMILY, "--calibration-count", "0"],
    ):
        with pytest.raises(SystemExit):
            export_main([shipped_cfg.MODEL.WEIGHTS, str(tmp_path / "x"), *argv])
    assert not (tmp_path / "x").exists()


def test_workers_answer_in_input_order_as_one(onnx_cache, tmp_path):
    """--workers 2 (two images in the model at once, one thread each) writes the same results, in
    the same order, as --workers 1; a bad file among them is still skipped in its place."""
    import json
    import shutil

    from foss_d2.apps.demo import main as demo_main

    photos = tmp_path / "photos"
    photos.mkdir()
    for i, path in enumerate(real_photos() * 2):
        shutil.copy(path, photos / f"{i}_{os.path.basename(path)}")
    (photos / "3_broken.jpg").write_bytes(b"not a jpeg")
    runs = {}
    threads = torch.get_num_threads()
    try:
        for workers in ("1", "2"):
            out = tmp_path / f"out{workers}"
            demo_main(
                ["--input", str(photos), "--output", str(out), "--no-draw", "--backend", "onnxruntime"]
                + ["--workers", workers]
            )
            runs[workers] = [json.loads(line) for line in open(out / "predictions.jsonl")]
    finally:
        torch.set_num_threads(threads)
    keys = [r["key"] for r in runs["1"]]
    assert keys == sorted(keys) and "3_broken.jpg" in keys
    assert [r["key"] for r in runs["2"]] == keys
    for a, b in zip(runs["1"], runs["2"]):
        assert ("skipped" in a) == ("skipped" in b)
        if "faces" in a:
            assert_same_faces(a["faces"], b["faces"], 1e-3, 1e-3, 1e-4)


@pytest.mark.parametrize("workers", [1, 3])
def test_predict_in_order_with_uneven_times(workers):
    """The runner hands results back in input order whatever finishes first; decode errors pass
    through in their place without reaching the model, and an image the model fails on comes back
    as an error (skipped with the reason) while the others go on."""
    import time

    from foss_d2.engine.pipeline import predict_in_order

    class Slow:
        def __call__(self, img):
            from detectron2.structures import Boxes, Instances

            if img == 3:
                raise ValueError("bad tensor")
            time.sleep(0.02 * (5 - img))  # the first images finish last
            inst = Instances((10, 10), pred_boxes=Boxes(torch.tensor([[0.0, 0.0, img, img]])))
            inst.scores = torch.tensor([1.0])
            return inst

    decoded = [(str(i), i, None) for i in range(5)]
    decoded.insert(2, ("bad", None, ValueError("cannot read")))
    out = list(predict_in_order(Slow(), iter(decoded), workers=workers))
    assert [k for k, *_ in out] == ["0", "1", "bad", "2", "3", "4"]
    assert out[2][3] is None and isinstance(out[2][2], ValueError)
    assert out[4][3] is None and "model failed" in str(out[4][2]) and "ValueError: bad tensor" in str(out[4][2])
    assert [faces[0]["box"][2] for k, img, err, faces in out if err is None] == [0, 1, 2, 4]


@pytest.mark.parametrize("workers", [1, 2])
def test_predict_in_order_hands_free_memory_back_every_32_images(workers, monkeypatch):
    """A long run's resident set stays level: after every RELEASE_EVERY (32) images taken, decode
    errors included, glibc's free memory goes back to the system; 0 turns it off."""
    from foss_d2.engine import pipeline

    taken, released = [], []
    monkeypatch.setattr(pipeline, "release_free_memory", lambda: released.append(len(taken)))

    def run(n):
        decoded = [(i, np.zeros((4, 4, 3), np.uint8), ValueError("x") if i % 10 == 3 else None) for i in range(n)]
        for key, *_ in pipeline.predict_in_order(lambda img: None, iter(decoded), workers):
            taken.append(key)

    monkeypatch.setattr(pipeline, "instances_to_faces", lambda inst: [])
    run(70)
    assert taken == list(range(70)) and released == [31, 63]  # (before the 32nd and 64th are handed on)
    taken.clear()
    released.clear()
    monkeypatch.setattr(pipeline, "RELEASE_EVERY", 0)
    run(70)
    assert len(taken) == 70 and released == []


def test_release_free_memory_where_glibc_has_it(monkeypatch):
    """On glibc (this project's Linux machines) malloc_trim is called; where the C library has none
    (musl, macOS) it says False and does nothing."""
    from foss_d2.engine import pipeline

    calls = []
    monkeypatch.setattr(pipeline, "_malloc_trim", lambda: lambda pad: calls.append(pad))
    assert pipeline.release_free_memory() is True and calls == [0]
    monkeypatch.setattr(pipeline, "_malloc_trim", lambda: None)
    assert pipeline.release_free_memory() is False and calls == [0]
    import platform

    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        monkeypatch.undo()
        assert pipeline._malloc_trim() is not None and pipeline.release_free_memory() is True


def test_onnx_dir_needs_the_onnxruntime_backend(tmp_path, capsys):
    from foss_d2.apps.demo import main as demo_main

    with pytest.raises(SystemExit) as e:  # a usage error, before the model loads
        demo_main(["--input", FAMILY, "--output", str(tmp_path / "o"), "--onnx-dir", str(tmp_path)])
    assert e.value.code == 2 and "--onnx-dir needs --backend onnxruntime" in capsys.readouterr().err


def test_unknown_backend(shipped_cfg):
    from foss_d2.engine import FOSSPredictor

    with pytest.raises(ValueError, match="backend"):
        FOSSPredictor(shipped_cfg, backend="tensorrt")


# ---------------------------------------------------------------- the peer benchmark


def test_summarize_peer_by_hand():
    from foss_d2.apps.benchmark import summarize_peer

    def slot(totals, faces):
        return {
            "total": totals,
            "stages": [{"detector": t / 2} for t in totals],
            "draw": [],
            "faces": faces,
            "macs": 1e9,
        }

    rec = {
        "a": [slot([1.0, 3.0, 2.0], 2), slot([4.0], 1)],
        "b": [slot([0.5], 2), slot([1.0], 1)],
        "peer": [slot([0.1], 1), slot([0.5], 1)],
    }
    out = summarize_peer(rec, ["a", "b"], True)
    assert out["a"]["s_per_photo"] == pytest.approx(3.0)  # per-image medians 2 and 4
    assert out["a"]["s_per_face"] == pytest.approx(6.0 / 3)
    assert out["b"]["speedup_vs_first"] == pytest.approx(4.0)  # median of 2/0.5 and 4/1
    assert out["a"]["ratio_to_peer"] == pytest.approx(14.0)  # median of 20 and 8
    assert out["a"]["gflops_achieved"] == pytest.approx((2 / 2 + 2 / 4) / 2)


def test_extra_variant_parsing():
    from foss_d2.apps.benchmark import parse_extra_variant

    name, (opts, backend, optimize) = parse_extra_variant(
        "one pass 576=onnxruntime:MODEL.FOSS.TEST_SIZES [] MODEL.FOSS.DET_INPUT_SIZE 576"
    )
    assert name == "one pass 576" and backend == "onnxruntime" and optimize
    assert opts == ["MODEL.FOSS.TEST_SIZES", "[]", "MODEL.FOSS.DET_INPUT_SIZE", "576"]
    assert parse_extra_variant("plain=pytorch:")[1] == ([], "pytorch", True)
    assert parse_extra_variant("q=onnxruntime-int8:MODEL.FOSS.K_TEST 10")[1] == (
        ["MODEL.FOSS.K_TEST", "10"],
        "onnxruntime-int8",
        True,
    )
    for bad in ("no-equals", "x=tensorrt:A 1", "x=pytorch:A", "=pytorch:A 1", "fast=pytorch:A 1", "x=pytorch A 1"):
        with pytest.raises(ValueError, match="--extra-variant"):
            parse_extra_variant(bad)


def test_int8_variants_without_their_graphs_are_a_usage_error(tmp_path, capsys):
    """An int8 variant, built in or --extra-variant, times --int8-dir's graphs: without it the
    command stops before reading any photo, saying what to give."""
    from foss_d2.apps.benchmark import main

    common = ["peer", "--peer-python", "", "--data", str(tmp_path / "nothing"), "--output", str(tmp_path)]
    for extra in (["--variants", "fast, onnxruntime int8"], ["--extra-variant", "q=onnxruntime-int8:"]):
        with pytest.raises(SystemExit) as e:
            main(common + extra)
        assert e.value.code == 2
        assert "need --int8-dir" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # with it, the next check is reached: no photos there
        main(common + ["--extra-variant", "q=onnxruntime-int8:", "--int8-dir", str(tmp_path)])
    assert "no UTKFace or WIDER val photos" in capsys.readouterr().err


def test_variant_overrides_win_over_the_common_ones():
    from foss_d2.apps.benchmark import variant_opts
    from foss_d2.config import get_foss_cfg

    common = ["MODEL.FOSS.DET_INPUT_SIZE", "480", "MODEL.FOSS.TEST_SIZES", "[800]"]
    opts = variant_opts(["MODEL.FOSS.DET_INPUT_SIZE", "512"], common)
    cfg = get_foss_cfg(opts=opts)
    assert (
        cfg.MODEL.DEVICE == "cpu" and cfg.MODEL.FOSS.DET_INPUT_SIZE == 512 and list(cfg.MODEL.FOSS.TEST_SIZES) == [800]
    )
    assert get_foss_cfg(opts=variant_opts([], common)).MODEL.FOSS.DET_INPUT_SIZE == 480


def _wider_val_figures(folder, found, groups, gender=70.0, ap50=40.0):
    """An evaluation's output folder as train_net --eval-only writes it, WIDER val's figures only."""
    import json

    folder.mkdir(parents=True)
    age = {"detection_rate": found, "group_acc": groups, "gender_acc": gender}
    (folder / "eval_results.json").write_text(json.dumps({"wider_face_val": {"age": age, "bbox": {"AP50": ap50}}}))
    return folder


def test_accuracy_against_time_read_tabled_and_drawn(tmp_path, monkeypatch):
    """--accuracy NAME=FOLDER: WIDER val's figures of a timed setting, from an evaluation's
    eval_results.json, in a table and a picture against the seconds per group photo."""
    import json

    from foss_d2.apps import benchmark

    name, shipped = benchmark.read_accuracy(f"shipped={_wider_val_figures(tmp_path / 'a', 53.3, 58.4, 71.9, 42.7)}")
    assert name == "shipped" and (shipped["detection_rate"], shipped["group_acc"], shipped["AP50"]) == (
        53.3,
        58.4,
        42.7,
    )
    # one dataset evaluated alone: detectron2 gives its tasks without its name, its inference folder names it
    alone = tmp_path / "alone"
    (alone / "inference" / "wider_face_val").mkdir(parents=True)
    (alone / "eval_results.json").write_text(json.dumps({"age": {"detection_rate": 50.0, "group_acc": 60.0}}))
    figures = benchmark.read_accuracy(f"x={alone}")[1]
    assert figures["detection_rate"] == 50.0 and figures["gender_acc"] is None and figures["AP50"] is None
    other = tmp_path / "other"
    other.mkdir()
    (other / "eval_results.json").write_text(json.dumps({"utkface_test": {"age": {"MAE": 5.9}}}))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "eval_results.json").write_text("{")
    for spec, says in (
        ("shipped", "expected NAME=FOLDER"),
        ("shipped=", "expected NAME=FOLDER"),
        (f"x={tmp_path / 'none'}", "no eval_results.json"),
        (f"x={other}", "holds no wider_face_val figures"),
        (f"x={tmp_path / 'broken'}", "--accuracy"),
    ):
        with pytest.raises(ValueError, match=says):
            benchmark.read_accuracy(spec)

    peer = benchmark.read_accuracy(f"peer={_wider_val_figures(tmp_path / 'p', 63.4, 61.3, 75.1, 62.3)}")[1]
    group = {"1": {"shipped": 0.4, "peer": 0.1}, "2": {"shipped": 0.25, "peer": 0.09}}
    report = {
        "date": "2026-12-06 17:56 UTC",
        "accuracy": {"shipped": shipped, "peer": peer},
        "threads": {
            t: {"sets": {"group photos": {n: {"s_per_photo": x} for n, x in r.items()}}} for t, r in group.items()
        },
    }
    rows, threads = benchmark.tradeoff_rows(report)
    assert threads == ["1", "2"]
    md = benchmark.tradeoff_markdown(rows, threads)
    assert "| face AP50 | s / group photo, 1 thread | s / group photo, 2 threads |" in md
    assert "| shipped | 53.3 | 58.4 | 71.9 | 42.7 | 0.400 | 0.250 |" in md
    assert "| peer | 63.4 | 61.3 | 75.1 | 62.3 | 0.100 | 0.090 |" in md
    drawn = {}
    monkeypatch.setattr(benchmark, "save_figure", lambda plt, fig, path, dpi: drawn.update(fig=fig, path=path))
    benchmark.plot_tradeoff(rows, threads, report["date"], str(tmp_path / "t.png"))
    found, groups = drawn["fig"].axes
    for ax, expected in ((found, {"shipped": 53.3, "peer": 63.4}), (groups, {"shipped": 58.4, "peer": 61.3})):
        points = sorted(tuple(map(float, c.get_offsets()[0])) for c in ax.collections if len(c.get_offsets()))
        assert points == sorted((x, expected[n]) for r in group.values() for n, x in r.items())
        # each setting named once, at its one-thread point
        assert {t.get_text(): tuple(t.xy) for t in ax.texts} == {n: (group["1"][n], y) for n, y in expected.items()}
    assert [t.get_text() for t in found.get_legend().get_texts()] == ["1 thread", "2 threads"]
    # names of points about equal in accuracy and time: the higher one lifted clear, with a line to its point
    from foss_d2.utils.figures import pyplot

    fig, ax = pyplot().subplots()
    ax.scatter([0.30, 0.31, 0.9], [58.0, 58.05, 40.0])
    benchmark.name_points(ax, [("side 448", 0.30, 58.0), ("side 576", 0.31, 58.05), ("far", 0.9, 40.0)])
    names = {t.get_text(): t for t in ax.texts}
    assert names["side 448"].xyann == (5, 3.0) and names["side 448"].arrow_patch is None
    assert names["far"].xyann == (5, 3.0)  # no other name near it
    assert names["side 576"].xyann[1] > 3.0 + 8 and names["side 576"].arrow_patch is not None


def test_accuracy_of_a_setting_not_timed_is_a_usage_error(tmp_path, capsys):
    """--accuracy names a timed setting and needs group photos: checked before any photo is read."""
    from foss_d2.apps.benchmark import main

    folder = _wider_val_figures(tmp_path / "eval", 53.3, 58.4)
    common = ["peer", "--peer-python", "", "--data", str(tmp_path / "nothing"), "--variants", "shipped"]
    for extra, says in (
        (["--accuracy", f"side 640={folder}"], "'side 640' is not one of the timed settings (shipped)"),
        (["--accuracy", f"peer={folder}"], "'peer' is not one of the timed settings"),  # the peer left out
        (["--accuracy", f"shipped={folder}", "--groups", "0"], "time group photos too"),
        (["--accuracy", f"shipped={tmp_path}"], "no eval_results.json"),
    ):
        with pytest.raises(SystemExit) as e:
            main(common + extra + ["--output", str(tmp_path / "out")])
        assert e.value.code == 2 and says in capsys.readouterr().err
    with pytest.raises(SystemExit):  # a right one: the next check is reached
        main(common + ["--accuracy", f"shipped={folder}", "--output", str(tmp_path / "out")])
    assert "no UTKFace or WIDER val photos" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@needs_shared_data
def test_benchmark_peer_runs(tmp_path):
    import json

    from foss_d2.apps.benchmark import main

    main(
        ["peer", "--closeups", "1", "--groups", "0", "--threads", "1", "--repeats", "1", "--no-flops",
         "--peer-python", "", "--variants", "shipped", "fast", "--output", str(tmp_path),
         "--extra-variant", "small=pytorch:MODEL.FOSS.DET_INPUT_SIZE 320 MODEL.FOSS.TEST_SIZES []"]
    )  # fmt: skip
    report = json.load(open(tmp_path / "peer.json"))
    rows = report["threads"]["1"]["sets"]["close-ups"]
    assert set(rows) == {"shipped", "fast", "small"} and rows["fast"]["faces"] >= 1
    # multiply-adds counted for onnxruntime too (its heatmap head's upper part lives in the graph:
    # fvcore called None), and the same as PyTorch's for the same network on the same photo
    main(
        ["peer", "--closeups", "1", "--groups", "0", "--threads", "1", "--repeats", "1", "--peer-python", "",
         "--variants", "shipped", "shipped, onnxruntime", "--output", str(tmp_path / "flops")]
    )  # fmt: skip
    rows = json.load(open(tmp_path / "flops" / "peer.json"))["threads"]["1"]["sets"]["close-ups"]
    assert rows["shipped"]["gmac_per_photo"] > 0.1
    assert rows["shipped, onnxruntime"]["gmac_per_photo"] == pytest.approx(rows["shipped"]["gmac_per_photo"], rel=1e-3)
    assert report["variants"]["small"]["opts"] == ["MODEL.FOSS.DET_INPUT_SIZE", "320", "MODEL.FOSS.TEST_SIZES", "[]"]
    assert (tmp_path / "peer.md").is_file()


def test_benchmark_peer_without_the_peer_installed_says_how_to_install_it(tmp_path, capsys):
    """The peer's virtualenv is a separate install: without it the benchmark stops in one line
    before any work (it was a FileNotFoundError traceback after the models were built)."""
    from foss_d2.apps.benchmark import main

    missing = tmp_path / "no-venv" / "bin" / "python"
    with pytest.raises(SystemExit) as e:
        main(["peer", "--peer-python", str(missing), "--output", str(tmp_path / "b")])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and f"--peer-python {missing} not found" in err[-1] and "install_peer.sh" in err[-1]
    assert not (tmp_path / "b").exists()


@needs_shared_data
def test_benchmark_peer_counts_each_variants_own_network(tmp_path):
    """Multiply-adds are counted on each variant's own model. The variant here has the shipped
    heatmap head widened by 256 hidden channels that are always 0 after the ReLU (3x3 weights 0,
    bias -1) behind positive 1x1 weights: the same faces, but its positive, always-run part is
    256 channels wider, so it costs 256 x (C x 9 + 1) more multiply-adds a pixel of the stride-4
    grid (C the head's input channels) and nothing more elsewhere."""
    import json

    from foss_d2.apps.benchmark import main
    from foss_d2.config import get_foss_cfg
    from foss_d2.engine.predictor import load_model

    from detectron2.modeling import build_model

    shipped = load_model(get_foss_cfg())
    wide_opts = ["MODEL.CENTERNET.HEATMAP_HEAD_CONV", "512"]
    wide = build_model(get_foss_cfg(opts=wide_opts))
    wide.load_state_dict({k: v for k, v in shipped.state_dict().items() if ".heatmap." not in k}, strict=False)
    (s3, s1), (w3, w1) = [(h[0], h[2]) for h in (shipped.proposal_generator.heatmap, wide.proposal_generator.heatmap)]
    with torch.no_grad():
        w3.weight.zero_()
        w3.weight[:256] = s3.weight
        w3.bias.fill_(-1.0)
        w3.bias[:256] = s3.bias
        w1.weight.fill_(1.0)
        w1.weight[:, :256] = s1.weight
        w1.bias.copy_(s1.bias)
    torch.save({"model": wide.state_dict()}, tmp_path / "wide.pth")

    main(
        ["peer", "--closeups", "1", "--groups", "0", "--threads", "1", "--repeats", "1",
         "--peer-python", "", "--variants", "shipped", "--output", str(tmp_path / "out"),
         "--extra-variant", f"wide=pytorch:MODEL.WEIGHTS {tmp_path / 'wide.pth'} " + " ".join(wide_opts)]
    )  # fmt: skip
    rows = json.load(open(tmp_path / "out" / "peer.json"))["threads"]["1"]["sets"]["close-ups"]
    assert rows["wide"]["faces"] == rows["shipped"]["faces"] == 1
    extra = (rows["wide"]["gmac_per_photo"] - rows["shipped"]["gmac_per_photo"]) * 1e9
    per_pixel = 256 * (s3.in_channels * 9 + 1)
    grid = extra / per_pixel  # the pass's stride-4 grid: a 200 px close-up runs at 224 px (56 x 56)
    assert grid == pytest.approx(56 * 56, rel=1e-3)


# ---------------------------------------------------------------- bfloat16 detector


def test_in_float32_runs_a_module_outside_the_autocast():
    """DLA's depthwise transposed convolutions stay float32 under the detector's bfloat16 autocast
    (PyTorch's CPU kernel for them in bfloat16 is slow): a bfloat16 input comes out float32, equal to
    the module on the float32 input. Without that autocast (training, a float64 gradient check) the
    module runs on its input as it is."""
    from foss_d2.utils.precision import in_float32

    torch.manual_seed(0)
    up = nn.ConvTranspose2d(4, 4, 4, stride=2, padding=1, groups=4, bias=False)
    x = torch.randn(1, 4, 5, 6).bfloat16()
    with torch.no_grad():
        expected = up(x.float())
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = in_float32(up, x)
            assert torch.is_autocast_enabled("cpu")  # the caller's autocast is back
        assert got.dtype == torch.float32 and torch.equal(got, expected)
        double = up.double()
        x64 = torch.randn(1, 4, 5, 6, dtype=torch.float64)
        assert torch.equal(in_float32(double, x64), double(x64))


def test_ida_up_sums_in_the_autocast_dtype():
    """IDA-up's transposed convolution runs in float32 under a bfloat16 autocast, and its output is
    summed with the finer level in bfloat16 (a float32 + bfloat16 sum and the node conv's cast of it
    took a tenth of the bfloat16 backbone): every node reads bfloat16, the output stays close to
    float32's; without the autocast every node reads float32."""
    from foss_d2.backbone.dla import IDAUp

    torch.manual_seed(0)
    ida = IDAUp(8, [8, 16, 32], [1, 2, 4], "BN", False).eval()
    levels = [torch.randn(1, 8, 16, 16), torch.randn(1, 16, 8, 8), torch.randn(1, 32, 4, 4)]
    seen = []
    for name in ("node_1", "node_2"):
        getattr(ida, name).register_forward_pre_hook(lambda m, args: seen.append(args[0].dtype))
    with torch.no_grad():
        expected = list(levels)
        ida(expected, 0, 3)
        assert seen == [torch.float32] * 2
        seen.clear()
        got = [x.bfloat16() for x in levels]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            ida(got, 0, 3)
    assert seen == [torch.bfloat16] * 2
    assert float((got[-1].float() - expected[-1]).norm() / expected[-1].norm()) < 0.02


def test_bfloat16_backbone_with_deformable_convolutions(monkeypatch):
    """MODEL.DLA.USE_DCN with the backbone in bfloat16: torchvision's deformable convolution has no
    CPU bfloat16 kernel, so it runs in float32 ("deformable_im2col" not implemented for 'BFloat16'
    before); the features stay close to float32's."""
    from conftest import tiny_cfg

    from foss_d2.utils import precision

    from detectron2.modeling import build_model

    monkeypatch.setattr(precision, "native_bf16", lambda device_type: True)
    torch.manual_seed(0)
    cfg = tiny_cfg(**{"MODEL.DLA.USE_DCN": True, "MODEL.FOSS.DET_INFERENCE_DTYPE": "bfloat16"})
    model = build_model(cfg).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected, got = model.backbone(x), model.test_features(x)
    assert got.keys() == expected.keys()
    for name, f in got.items():
        assert f.dtype == torch.float32
        err = float((f - expected[name]).norm() / expected[name].norm())
        assert 0 < err < 0.05, (name, err)  # bfloat16's rounding (0: it did not run in bfloat16)


def test_bfloat16_detector_at_test_time_only(monkeypatch):
    """MODEL.FOSS.DET_INFERENCE_DTYPE bfloat16: the test passes' backbone features come out float32,
    close to float32's and not equal; training and a device without bfloat16 keep float32."""
    from conftest import tiny_cfg

    from foss_d2.utils import precision

    from detectron2.modeling import build_model

    torch.manual_seed(0)
    model = build_model(tiny_cfg(**{"MODEL.FOSS.DET_INFERENCE_DTYPE": "bfloat16"})).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = model.backbone(x)
        monkeypatch.setattr(precision, "native_bf16", lambda device_type: False)
        assert all(torch.equal(f, expected[k]) for k, f in model.test_features(x).items())
        monkeypatch.setattr(precision, "native_bf16", lambda device_type: True)
        got = model.test_features(x)
    assert got.keys() == expected.keys()
    for name, f in got.items():
        assert f.dtype == torch.float32
        err = float((f - expected[name]).norm() / expected[name].norm())
        assert 0 < err < 0.05, (name, err)
    model.train()
    with torch.no_grad():
        plain = model.backbone(x)
        assert all(torch.equal(f, plain[k]) and f.dtype == torch.float32 for k, f in model.test_features(x).items())
    model.eval()
    images = [torch.randint(0, 255, (3, 50, 70), dtype=torch.uint8)]
    calls = []
    monkeypatch.setattr(model, "test_features", lambda x: calls.append(x) or model.backbone(x))
    with torch.no_grad():
        model.detect_pass(images)
    assert len(calls) == 1  # the test pass reads its features through test_features


def test_bfloat16_detector_on_the_shipped_model_finds_the_same_faces(shipped_cfg, torch_predictor, monkeypatch):
    """The shipped model's answers on demo/family.jpg with the detector and the age network in
    bfloat16: the same faces, boxes within a pixel, scores within 0.01, ages within 0.75 years,
    P(female) within 0.01 (on an AMX host, 2026-12-07: 0.2 px, 0.002, 0.22 years, 0.005)."""
    from foss_d2.engine import FOSSPredictor
    from foss_d2.utils import precision

    monkeypatch.setattr(precision, "native_bf16", lambda device_type: True)
    cfg = shipped_cfg.clone()
    cfg.defrost()
    cfg.MODEL.FOSS.DET_INFERENCE_DTYPE = "bfloat16"
    cfg.MODEL.AGE_HEAD.INFERENCE_DTYPE = "bfloat16"
    a, b = faces_of(torch_predictor, FAMILY), faces_of(FOSSPredictor(cfg), FAMILY)
    assert len(a) >= 7
    assert_same_faces(a, b, 1.0, 0.75, 0.01)
    assert max(abs(x["score"] - y["score"]) for x, y in zip(a, b)) <= 0.01
    assert [x["box"] for x in a] != [x["box"] for x in b]  # the detector did run in bfloat16


def test_peer_stages_picture_stacks_each_variants_stage_medians(tmp_path, monkeypatch):
    """peer_stages.png: a panel per kind of photo and thread count, a bar per variant whose pieces
    are its stages' median milliseconds side by side (the peer's two in its own colours), the
    median photo's milliseconds and time against the peer's written at its end; peer.md links it."""
    from foss_d2.apps import benchmark

    def row(total, stages, ratio=None):
        r = {"s_per_photo": total, "s_per_face": total, "faces": 1, "speedup_vs_first": 1.0, "stages": stages}
        return r if ratio is None else dict(r, ratio_to_peer=ratio)

    shipped = row(0.05, {"resize": 0.001, "detector": 0.03, "crops": 0.002, "age_network": 0.015, "post": 0.001}, 4.5)
    peer = row(0.011, {"resize": 0.0, "detector": 0.003, "crops": 0.0, "age_network": 0.008, "post": 0.0})
    report = {
        "machine": "test host",
        "date": "2026-12-07 10:24 UTC",
        "repeats": 3,
        "images": {"close-ups": ["a.jpg"], "group photos": ["b.jpg"]},
        "threads": {
            "1": {"conv_peak_gflops": 100.0, "sets": {"close-ups": {"shipped": shipped, "peer": peer}}},
            "2": {"conv_peak_gflops": 200.0, "sets": {"group photos": {"shipped": shipped}}},
        },
    }
    drawn = {}
    monkeypatch.setattr(
        benchmark, "save_figure", lambda plt, fig, path, dpi, rect: drawn.update(fig=fig, path=path, rect=rect)
    )
    assert benchmark.plot_stages(report, str(tmp_path / "s.png")) and drawn["path"] == str(tmp_path / "s.png")
    axes = drawn["fig"].axes  # 2 x 2, the panels of sets not timed hidden
    closeups_1, closeups_2, groups_1, groups_2 = axes[:4]
    assert [ax.get_visible() for ax in (closeups_1, closeups_2, groups_1, groups_2)] == [True, False, False, True]
    bars = [(p.get_y() + p.get_height() / 2, p.get_x(), p.get_width()) for p in closeups_1.patches]
    # the peer at the bottom (y 0), shipped above it: each stage's ms from where the last ended
    assert [(y, round(x, 6), round(w, 6)) for y, x, w in bars] == [
        (0, 0.0, 3.0), (0, 3.0, 8.0), (1, 0.0, 1.0), (1, 1.0, 30.0), (1, 31.0, 2.0), (1, 33.0, 15.0), (1, 48.0, 1.0)
    ]  # fmt: skip
    from matplotlib.colors import to_rgba

    assert [p.get_facecolor() for p in closeups_1.patches[:2]] == [to_rgba("tab:red"), to_rgba("lightcoral")]
    assert closeups_1.patches[3].get_facecolor() == to_rgba("tab:blue")  # shipped's detector
    assert [t.get_text() for t in closeups_1.texts] == ["  11 ms", "  50 ms, 4.5x the peer's"]
    assert [t.get_text() for t in closeups_1.get_yticklabels()] == ["peer", "shipped"]
    assert groups_2.get_title() == "group photos, 2 threads"
    legend = [t.get_text() for t in drawn["fig"].legends[0].get_texts()]
    assert legend[-2:] == ["peer: detector", "peer: age and gender"] and drawn["fig"].get_figwidth() == 12
    # one thread count and the peer left out: no peer in the legend, which wraps on a figure wide
    # enough for it and the title (one column's 6 inches cut both)
    alone = dict(report, threads={"1": {"sets": {"close-ups": {"shipped": shipped}}}})
    benchmark.plot_stages(alone, str(tmp_path / "alone.png"))
    legend = drawn["fig"].legends[0]
    assert [t.get_text() for t in legend.get_texts()] == ["resize", "detector", "crops", "age network", "post"]
    assert legend._ncols == 3 and drawn["fig"].get_figwidth() == 8
    assert not benchmark.plot_stages({"threads": {"1": {"sets": {"close-ups": {}}}}}, str(tmp_path / "none.png"))
    monkeypatch.undo()
    md = benchmark.write_peer_report(str(tmp_path / "out"), report, ["shipped"])
    assert "![milliseconds a photo, stage by stage](peer_stages.png)" in md
    assert os.path.getsize(tmp_path / "out" / "peer_stages.png") > 10_000


@pytest.mark.parametrize("capability, native", [((8, 0), True), ((7, 5), False)])
def test_native_bf16_on_a_gpu_with_torch_before_2_3(monkeypatch, capability, native):
    """torch before 2.3 (setup.py allows 2.0) has no including_emulation argument: a TypeError
    under the fast preset on any GPU; the compute capability says it instead (Ampere, 8.0, on)."""
    from foss_d2.utils import precision

    def old_is_bf16_supported():  # torch 2.2's signature
        return True

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", old_is_bf16_supported)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    precision.native_bf16.cache_clear()
    try:
        assert precision.native_bf16("cuda") is native
    finally:
        precision.native_bf16.cache_clear()


def test_onnxruntime_backend_is_on_the_cpu_from_the_command_line_too(onnx_cache, monkeypatch):
    """--backend onnxruntime on a machine with a GPU: MODEL.DEVICE defaults to cuda there, and the
    command stopped after loading the model ("set MODEL.DEVICE cpu"; FaceAgeEstimator chose cpu
    itself); an explicit MODEL.DEVICE is kept. cpu:0, which check_device takes, was refused."""
    import argparse

    from foss_d2.apps.cli import config_from_args
    from foss_d2.engine.predictor import FOSSPredictor

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # the default device becomes cuda
    parser = argparse.ArgumentParser()
    args = argparse.Namespace(config_file=None, opts=[], backend="onnxruntime", preset=None, confidence_threshold=None)
    assert config_from_args(parser, args).MODEL.DEVICE == "cpu"
    assert config_from_args(parser, argparse.Namespace(**{**vars(args), "backend": "pytorch"})).MODEL.DEVICE == "cuda"
    chosen = argparse.Namespace(**{**vars(args), "opts": ["MODEL.DEVICE", "cuda:0"]})
    assert config_from_args(parser, chosen).MODEL.DEVICE == "cuda:0"
    monkeypatch.undo()
    cfg = config_from_args(parser, argparse.Namespace(**{**vars(args), "opts": ["MODEL.DEVICE", "cpu:0"]}))
    faces = FOSSPredictor(cfg, backend="onnxruntime")(cv2.imread(FAMILY))
    assert len(faces) == 8  # the demo picture's eight boxes (README)
