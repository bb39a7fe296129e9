"""Config keys of FOSS-D2, with the paper's defaults (Yoshimura & Ogata, FOSS, section 4.2)."""

import math
import os
from typing import Optional

import torch

from detectron2.config import CfgNode as CN
from detectron2.config import get_cfg

from .model_zoo import DEFAULT_CONFIG, DEFAULT_WEIGHTS
from .utils.precision import check_dtype


def add_foss_config(cfg):
    """Add every FOSS-D2 key to a detectron2 config. Defaults are the paper's (section 4.2)."""
    _C = cfg
    # detectron2 defaults to CUDA; FOSS-D2 runs wherever it is installed.
    _C.MODEL.DEVICE = "cuda" if torch.cuda.is_available() else "cpu"

    _C.MODEL.FOSS = CN()
    # The face detector, by its name in FOSS's FACE_DETECTOR_REGISTRY (proposal_generator/build.py).
    _C.MODEL.FOSS.FACE_DETECTOR = "CenterNet"
    # Detector input: the full image is resized to DET_INPUT_SIZE x DET_INPUT_SIZE (paper: 480x480).
    _C.MODEL.FOSS.DET_INPUT_SIZE = 480
    # Not in the paper (off): at test time, an image smaller than DET_INPUT_SIZE goes to the
    # detector at its longer side rounded up to a multiple of 32 instead of upscaled to
    # DET_INPUT_SIZE, so that a 200 px close-up costs a 224x224 pass, not a 480x480 one.
    _C.MODEL.FOSS.DET_INPUT_FIT_SMALL = False
    # Not in the paper (off when empty): in training, each step resizes its batch to one of these
    # sides, drawn at random, instead of DET_INPUT_SIZE, so that one detector learns the sizes it is
    # run at (one pass at 512-640 px, or TEST_SIZES' second pass). Test time keeps DET_INPUT_SIZE.
    _C.MODEL.FOSS.DET_INPUT_SIZES_TRAIN = []
    # K, the maximum number of faces per image passed to the age network (Sec. 3.1 / 4.2):
    # 1 without tiling, 9 with tiling augmentation at training time, 20 at test time.
    _C.MODEL.FOSS.K_TRAIN = 1
    _C.MODEL.FOSS.K_TEST = 20
    # Faces whose detection score exceeds this are reported at test time (paper: 0.2).
    _C.MODEL.FOSS.SCORE_THRESH_TEST = 0.2
    # Train only the detector (the first stage of the paper's two-stage recipe).
    _C.MODEL.FOSS.DETECTOR_ONLY = False
    # Frozen detector (paper's default) vs end-to-end (Sec. 3.3).
    _C.MODEL.FOSS.FREEZE_DETECTOR = True
    # Add ground-truth boxes to the K proposals during training (not in the paper; helps a detector
    # trained jointly from scratch, where early proposals miss every face).
    _C.MODEL.FOSS.ADD_GT_BOXES = False
    # Paper: the age network always runs on all K boxes (fixed-size batches). False runs it only on
    # boxes above SCORE_THRESH_TEST, which is faster on CPU when photos hold fewer than K faces.
    _C.MODEL.FOSS.AGE_ON_ALL_K = True
    # Not in the paper (off when empty): more detector passes at test time, on the image resized to
    # each of these sizes, for faces too small to be found at DET_INPUT_SIZE. A pass runs only on
    # images whose longer side exceeds DET_INPUT_SIZE (a smaller image holds no detail the first pass
    # lost) and keeps only its boxes whose longer side is below TEST_SIZES_MAX_BOX pixels of its own
    # input (a detector trained at DET_INPUT_SIZE has never seen larger faces); the passes' boxes are
    # merged by NMS at TEST_NMS_THRESH, and each face's age network reads the feature of its pass.
    # This and both TEST_FLIPs run in FOSSWithTTA (meta_arch/test_time_augmentation.py).
    _C.MODEL.FOSS.TEST_SIZES = []
    _C.MODEL.FOSS.TEST_SIZES_MAX_BOX = 160.0
    _C.MODEL.FOSS.TEST_NMS_THRESH = 0.5
    # Not in the paper: the detector's and the age network's 4-D weights stored channels-last (NHWC),
    # so that oneDNN (CPU) and cuDNN run every convolution and its gradients without reordering each
    # layer's input. The same numbers up to float rounding; a detector training step took 1.3x fewer
    # CPU-seconds on this project's 2-core machine, on top of CenterNet's sparse heads (docs/RESULTS.md section 6).
    _C.MODEL.FOSS.CHANNELS_LAST = True
    # Not in the paper (issue 19): as MODEL.AGE_HEAD.PREPACK, for the detector (DLA and CenterNet's
    # heads) at inference on CPU. It pays where PyTorch would otherwise run a 1x1 convolution in its
    # own fallback, one image on one thread (a folder's photos, one per thread, and one-thread
    # runs); on several threads a single image keeps the plain convolutions in float32, not in
    # bfloat16 (DET_INFERENCE_DTYPE; engine/fusion.py).
    _C.MODEL.FOSS.PREPACK_DETECTOR = True
    # Not in the paper: as MODEL.AGE_HEAD.INFERENCE_DTYPE, for the detector's backbone at test time
    # (bfloat16 autocast where the device does it in hardware, float32 elsewhere; "bfloat16" in the
    # fast preset), and CenterNet's heatmap head's dense 3x3 conv; the features and the heatmap
    # logits are float32 again before the heads, the ROIAlign and the age network read them. On
    # WIDER val the answers move by bfloat16 rounding (faces found 53.1-53.3% against 53.3%,
    # gender 69.3-69.8% against 70.4%), for 0.75-0.85x the fast preset's time on a CPU with AMX
    # (docs/RESULTS.md sections 1 and 2).
    _C.MODEL.FOSS.DET_INFERENCE_DTYPE = "float32"
    # Not in the paper (empty: off, issue 16): a whole FOSS checkpoint of the same architecture that
    # rides along in training as a frozen teacher. It runs its own detector on the same batch and
    # its own age network on the very crops the student reads (jitter included), and the student's
    # P(female) is pulled toward the teacher's on faces that have no gender label
    # (MODEL.AGE_HEAD.LAMBDA_TEACHER_GEN; ages too with LAMBDA_TEACHER_AGE): the teacher keeps its
    # reading of gender on group photos while the student's detector feature and ages change.
    _C.MODEL.FOSS.TEACHER_WEIGHTS = ""

    # CenterNet face detector (Zhou et al. 2019; paper Sec. 3.2).
    _C.MODEL.CENTERNET = CN()
    _C.MODEL.CENTERNET.IN_FEATURE = "dla_out"
    _C.MODEL.CENTERNET.NUM_CLASSES = 1
    _C.MODEL.CENTERNET.HEAD_CONV = 256
    # Not in the paper (0: HEAD_CONV): the heatmap head's own hidden width. At test time the size and
    # offset heads run only at the peaks, the heatmap head at every stride-4 pixel: at 64 instead of
    # 256 a 512 px detector pass does about a fifth fewer multiply-adds (issue 19;
    # tools/research/distill_heads.py narrows a trained model's heatmap head).
    _C.MODEL.CENTERNET.HEATMAP_HEAD_CONV = 0
    # Not in the paper (issue 19): at inference on CPU and in the ONNX export (engine/fusion.py's
    # bound_heatmap), the heatmap head's hidden channels whose 1x1 weight is negative run only
    # where the others' sum leaves a peak above SCORE_THRESH_TEST possible (that sum bounds the
    # logit from above): the faces found are the same, and a 512 px pass does about half of that
    # head's multiply-adds (BoundedHeatmapHead).
    _C.MODEL.CENTERNET.HEATMAP_BOUND = True
    _C.MODEL.CENTERNET.LAMBDA_SIZE = 0.1  # λ_size
    _C.MODEL.CENTERNET.LAMBDA_OFF = 1.0  # λ_off
    _C.MODEL.CENTERNET.FOCAL_ALPHA = 2.0
    _C.MODEL.CENTERNET.FOCAL_BETA = 4.0
    _C.MODEL.CENTERNET.MIN_OVERLAP = 0.7  # Gaussian radius rule of CornerNet/CenterNet
    _C.MODEL.CENTERNET.PRIOR_PROB = 0.1  # heatmap bias init = -log((1-p)/p) ≈ -2.19
    _C.MODEL.CENTERNET.NMS_KERNEL = 3
    # Not in the paper (0 = off, CenterNet's rule: every face a target): in training, faces whose
    # longer side is under IGNORE_BELOW detector-input pixels are no targets but ignore regions,
    # where the heatmap loss has no negative term (issue 16: crowds whose faces are mostly a few
    # pixels at 480 px; docs/DESIGN.md "Faces too small to learn").
    _C.MODEL.CENTERNET.IGNORE_BELOW = 0.0
    # Not in the FOSS paper (CenterNet's flip test, Zhou et al. 2019, off by default): at test time the
    # heatmap and sizes are averaged over the detector input and its mirror image (twice the detector
    # work; the age network still reads the unmirrored feature).
    _C.MODEL.CENTERNET.TEST_FLIP = False

    # DLA-34 backbone with CenterNet's DLA-up / IDA-up neck (stride-4 output).
    _C.MODEL.DLA = CN()
    _C.MODEL.DLA.ARCH = "dla34"
    _C.MODEL.DLA.OUT_CHANNELS = 64
    _C.MODEL.DLA.USE_DCN = False  # deformable convs in the neck (torchvision deform_conv2d)
    _C.MODEL.DLA.NORM = "BN"
    # Not in the paper (off by default): freeze the trunk and DLA-up, everything the age network's
    # input (``dla_up``, the feature connection) depends on. A detector refit then trains only the
    # extra IDA-up and the CenterNet heads, and the age network needs no refit after it.
    _C.MODEL.DLA.FREEZE_AGE_FEATURE = False

    # Age / gender network: TResNet-S on crops (Sec. 3.1, 4.2).
    _C.MODEL.AGE_HEAD = CN()
    # The age network, by its name in FOSS's AGE_HEAD_REGISTRY (roi_heads/build.py).
    _C.MODEL.AGE_HEAD.NAME = "TResNetAgeHead"
    _C.MODEL.AGE_HEAD.LAYERS = [3, 3, 7, 3]  # TResNet-S
    _C.MODEL.AGE_HEAD.WIDTH_FACTOR = 0.9
    _C.MODEL.AGE_HEAD.CROP_SIZE = [160, 224]  # W x H
    # Crop margins relative to the box size: top, bottom, left, right (paper: 20% top, 10% others).
    _C.MODEL.AGE_HEAD.CROP_MARGINS = [0.2, 0.1, 0.1, 0.1]
    _C.MODEL.AGE_HEAD.NUM_AGE_CLASSES = 101
    _C.MODEL.AGE_HEAD.HEAD_CHANNELS = 512  # width of the 1x1 conv before global pooling
    _C.MODEL.AGE_HEAD.DROPOUT = 0.2
    _C.MODEL.AGE_HEAD.GENDER_ON = True
    # Intermediate feature connection (Sec. 3.1): off = the paper's baseline.
    _C.MODEL.AGE_HEAD.INTERMEDIATE_FEATURE = True
    # Detector feature that is branched off (paper: DLA-34's stride-4 output before CenterNet's extra
    # aggregation, see backbone/dla.py).
    _C.MODEL.AGE_HEAD.IN_FEATURE = "dla_up"
    _C.MODEL.AGE_HEAD.FEATURE_ROI_SIZE = [10, 14]  # W x H
    # Channels concatenated into the age network; that block is made narrower by this much.
    _C.MODEL.AGE_HEAD.WIDTH_REDUCTION = 48
    # Loss (Sec. 3.2).
    _C.MODEL.AGE_HEAD.TH_IOU = 0.3
    # Not in the paper: at test time, average each face's age distribution and P(female) over its
    # crop and the mirror image (twice the age-network work).
    _C.MODEL.AGE_HEAD.TEST_FLIP = False
    # Not in the paper: "bfloat16" runs the age network at test time in bfloat16 where the device
    # does it in hardware (CPUs with AVX512-BF16 or AMX, recent GPUs), float32 elsewhere; its
    # outputs and everything after stay float32 (utils/precision.py; the detector's backbone:
    # MODEL.FOSS.DET_INFERENCE_DTYPE).
    _C.MODEL.AGE_HEAD.INFERENCE_DTYPE = "float32"
    # Not in the paper (issue 19): at inference on CPU (FOSSPredictor) the age network's convolution
    # weights are reordered into oneDNN's blocked layout once per input shape, not on every call
    # (engine/fusion.py, PrepackedConv2d); the same answers to float rounding, faster on the 2-15
    # crops of a close-up or a small group with AVX-512, as fast with AVX2. Off: the plain convolutions.
    _C.MODEL.AGE_HEAD.PREPACK = True
    # Not in the paper: at test time the age network takes at most this many crops a call (a
    # crowd's faces, and their mirror images, in several calls; 0: all at once). On 2 CPU threads
    # the 432 crops of a crowd photo (216 faces found, and their mirror images) took 0.81 s in one
    # call, 0.65 s in calls of 128 (docs/RESULTS.md at 58d4fa8, section 10, "Faces a photo"); calls
    # of 64 take the same time as 128 with peaks 140-270 MiB lower over group photos, the answers
    # the same (docs/RESULTS.md section 2, "Memory over a long run").
    _C.MODEL.AGE_HEAD.TEST_CROPS_PER_CALL = 64
    # How a face's age is read off its distribution over the 101 classes: "mean" (the paper's: the
    # mean-variance loss trains the mean), "median" (the age with the least expected absolute
    # error) or "mode" (the most probable class). Not in the paper besides "mean"; test time only.
    _C.MODEL.AGE_HEAD.AGE_READOUT = "mean"
    # The age_std reported with each age (pred_age_stds): the distribution's standard deviation
    # times this. Not in the paper (1.0: the distribution's own). The mean-variance loss narrows
    # the distribution, so its std is too small to read as an error bar: the shipped model's put
    # the true age within one std for 44-46% of held-out faces, 63-65% at 1.6 (FOSS-default.yaml;
    # the evaluator's age_in_1std and std_scale_68 fit it, docs/DESIGN.md). Ages are not touched.
    _C.MODEL.AGE_HEAD.AGE_STD_SCALE = 1.0
    _C.MODEL.AGE_HEAD.LAMBDA_MEAN = 0.01
    _C.MODEL.AGE_HEAD.LAMBDA_VAR = 0.0025
    _C.MODEL.AGE_HEAD.LAMBDA_CE = 0.05
    _C.MODEL.AGE_HEAD.LAMBDA_GEN = 0.1
    # Weight of KL(teacher || student) on P(female) of faces without a gender label, with
    # MODEL.FOSS.TEACHER_WEIGHTS (not in the paper; no effect without a teacher).
    _C.MODEL.AGE_HEAD.LAMBDA_TEACHER_GEN = 1.0
    # With the teacher: also pull P(female) toward the teacher's on faces that have a gender label
    # (their label's BCE stays), e.g. to keep the teacher's reading of UTKFace's close-ups.
    _C.MODEL.AGE_HEAD.TEACHER_LABELLED_TOO = False
    # With the teacher: weight of KL(teacher || student) on the age distributions of matched faces
    # whose age label the teacher's mean reads within TEACHER_AGE_GATE years (not in the paper;
    # 0 = off). Meant to keep the teacher's close-up ages (UTKFace) on a new detector's feature,
    # without hearing it where it reads children as adults; measured at 1.0 it kept some of
    # UTKFace and lost FG-NET, a worse trade than averaging weights (RESULTS.md at 58d4fa8, section 10), so off.
    _C.MODEL.AGE_HEAD.LAMBDA_TEACHER_AGE = 0.0
    _C.MODEL.AGE_HEAD.TEACHER_AGE_GATE = 5.0
    # With the teacher: its answers averaged over each crop and its mirror image, as the shipped
    # config answers at test time (TEST_FLIP), at the cost of a second teacher pass per crop.
    _C.MODEL.AGE_HEAD.TEACHER_FLIP = False
    # Not in the paper (off when 0, issue 16): in training each crop also goes through the age
    # network mirrored, with its detector feature mirrored (as TEST_FLIP does at test time), both
    # halves learn from the labels, and this weights the Jensen-Shannon divergence between the two
    # halves' age distributions plus that between their P(female), over every matched face,
    # labelled or not. The shipped model's plain and mirrored readings of a WIDER face differ by
    # 4.2 years on average: a network that answers alike would need no mirror average at test time.
    _C.MODEL.AGE_HEAD.LAMBDA_FLIP = 0.0
    # Not in the paper (off when 0, issue 16): in training, each face box the age network's crop and
    # detector feature are cut from is moved by up to CROP_JITTER[0] of its size, rescaled by up to
    # CROP_JITTER[1] and its aspect ratio changed by up to CROP_JITTER[2] (relative), so the age
    # network learns from the loose boxes a detector gives on group photos, not only exact ones.
    # The face's label still goes by the unjittered box (TH_IOU).
    _C.MODEL.AGE_HEAD.CROP_JITTER = [0.0, 0.0, 0.0]
    # Ablation (off, issue 16): the ROIAligned detector feature given to the age network is all zeros,
    # in training and at test time, to measure what the feature connection adds to (or pulls from)
    # the ages of small faces.
    _C.MODEL.AGE_HEAD.ZERO_FEATURE = False
    # Not in the paper (empty: all trained, issue 16): parts of the age network kept fixed in
    # training, their BatchNorm statistics too: "body" (the TResNet trunk), "feature_proj" (the
    # detector feature's 1x1 projection), "age_branch", "gender_branch", or a part of one of them
    # ("body.layer4"). With the trunk, its projection and the gender branch fixed, fine-tuning
    # leaves every gender answer as it was and moves only the ages.
    _C.MODEL.AGE_HEAD.FROZEN_PARTS = []

    # Tiling augmentation (Sec. 3.3): 1, 4 or 9 tiles, at most 4 distinct images loaded.
    _C.INPUT.TILING = CN()
    _C.INPUT.TILING.ENABLED = False
    _C.INPUT.TILING.NUM_TILES = [1, 4, 9]
    _C.INPUT.TILING.PROBS = [1.0 / 3, 1.0 / 3, 1.0 / 3]
    _C.INPUT.TILING.MAX_IMAGES = 4
    _C.INPUT.TILING.CANVAS_SIZE = 600
    # Datasets that are tiled (single-face age datasets); others (WIDER) stay seamless.
    _C.INPUT.TILING.DATASETS = []
    # Default augmentation (Sec. 4.2): flip, scale, crop, rotation, colour jitter, blur.
    _C.INPUT.AUG = CN()
    _C.INPUT.AUG.FLIP = True
    _C.INPUT.AUG.SCALE_RANGE = [0.75, 1.25]
    _C.INPUT.AUG.CROP_FRACTION = 0.9  # random crop keeps at least this fraction of each side
    _C.INPUT.AUG.ROTATION = 10.0  # degrees, +-
    _C.INPUT.AUG.COLOR_JITTER = 0.2  # brightness/contrast/saturation strength
    _C.INPUT.AUG.BLUR_PROB = 0.1
    # Not in the paper (a training-speed aid): the colour jitter's factors are drawn in the loader
    # and applied by the model on its device, after blur instead of before (both are linear per
    # pixel); a loader worker then skips three full-resolution float blends per image.
    _C.INPUT.AUG.COLOR_ON_DEVICE = False
    # Not in the paper (off by default): with this probability a training picture is shrunk by a
    # factor from ZOOM_OUT_RANGE onto a canvas of its size, so that close-up age labels also come
    # as the small faces of group photos (foss_d2/data/augmentation.py, RandomZoomOut).
    _C.INPUT.AUG.ZOOM_OUT_PROB = 0.0
    _C.INPUT.AUG.ZOOM_OUT_RANGE = [2.0, 5.0]
    # Not in the paper (all off, issue 16): the looks of faces "in the wild" that aligned close-ups
    # (UTKFace) lack, applied in training to each source image before tiling, so every tile gets
    # its own (foss_d2/data/augmentation.py, build_wild_augmentations). Each op has a probability.
    _C.INPUT.AUG.WILD = CN()
    # A random solid-colour or noise rectangle over OCCLUDER_SIZE (fraction of the area) of one face
    # box, inside the box (hands, glasses, other heads); OCCLUDER_SIZE[1] < 1 so it never hides all.
    _C.INPUT.AUG.WILD.OCCLUDER_PROB = 0.0
    _C.INPUT.AUG.WILD.OCCLUDER_SIZE = [0.1, 0.3]
    # Lighting: pixel values mapped by (v / 255) ** gamma, gamma from GAMMA_RANGE.
    _C.INPUT.AUG.WILD.GAMMA_PROB = 0.0
    _C.INPUT.AUG.WILD.GAMMA_RANGE = [0.6, 1.6]
    # Greyscale (old and scanned photos), three equal channels kept.
    _C.INPUT.AUG.WILD.GREY_PROB = 0.0
    # Low resolution: shrunk by a factor from DOWNSCALE_RANGE and scaled back up to the same size, as
    # the small faces of a group photo are when the age network's crop upscales them.
    _C.INPUT.AUG.WILD.DOWNSCALE_PROB = 0.0
    _C.INPUT.AUG.WILD.DOWNSCALE_RANGE = [2.0, 6.0]
    # JPEG compression at a quality from JPEG_QUALITY (web and phone photos).
    _C.INPUT.AUG.WILD.JPEG_PROB = 0.0
    _C.INPUT.AUG.WILD.JPEG_QUALITY = [30, 90]
    # Images whose longer side exceeds this are downscaled when loaded (keeps memory bounded).
    _C.INPUT.MAX_SIDE = 2048
    # Not in the paper (a training-speed aid): decode every training image once into memory before
    # the loader starts, so that loader workers skip JPEG decoding (data/cache.py).
    _C.INPUT.CACHE_DECODED = False

    # Paper 4.2: Adam, lr 1e-4, x0.1 at epochs 50 and 70 of 80 (62.5% and 87.5%; IMDB-WIKI: 30 and 40 of 50).
    _C.SOLVER.OPTIMIZER = "ADAM"
    # Learning-rate multiplier of the age network (1.0 = the paper's single learning rate).
    _C.SOLVER.AGE_HEAD_LR_FACTOR = 1.0
    # Not in the paper: training stops (before anything is checkpointed) when the total loss exceeds
    # this many times the first iteration's, or any weight is NaN/Inf; 0 keeps only the weights
    # check. detectron2 alone stops only on a non-finite loss (engine/hooks.py).
    _C.SOLVER.DIVERGENCE_LOSS_FACTOR = 100.0

    # Multi-dataset sampling (Sec. 4.2): weights per DATASETS.TRAIN entry; empty = proportional to size.
    _C.DATALOADER.DATASET_WEIGHTS = []
    # Not in the paper (off when 0, issue 16): within each dataset, an age-labelled image is drawn
    # with weight (1 / size of its age band) ** AGE_BALANCE (bands: utils/ages.py, AGE_BANDS), so
    # that children and the old are not drowned by adults; 1 balances the bands fully. The datasets'
    # probabilities (DATASET_WEIGHTS) stay as they are.
    _C.DATALOADER.AGE_BALANCE = 0.0
    # Where WIDER FACE / UTKFace live when datasets are registered from the built-in loaders.
    _C.DATASETS.ROOT = ""
    # Not in the paper: datasets in COCO JSON (with FOSS's ``age`` / ``gender`` / ``age_group`` per
    # face, data/coco.py) registered before training or evaluation, so that a config can name them in
    # DATASETS.TRAIN / TEST: ((name, json_file, image_root[, evaluator_type]), ...); image_root ""
    # when the JSON's file names are absolute or relative to the working directory
    # (data/datasets/builtin.py, register_config_datasets).
    _C.DATASETS.COCO = []


def checked_opts(opts) -> list:
    """Config overrides as a flat KEY, VALUE list; a dict {KEY: VALUE} is flattened. One string (a
    common slip) is a TypeError showing the list meant; a key without its value a ValueError."""
    if isinstance(opts, str):
        raise TypeError(f"opts is a list of KEY, VALUE strings, e.g. {opts.split()!r}, not one string")
    if isinstance(opts, dict):
        opts = [x for kv in opts.items() for x in kv]
    opts = list(opts)
    if len(opts) % 2:
        raise ValueError(f"opts are KEY VALUE pairs: {opts[-1]!r} has no value")
    return opts


# DLA's coarsest level is at stride 32: a detector input side that is not a multiple of it
# gives levels whose upsampled sums do not line up (IDA-up)
DET_SIZE_DIVISOR = 32


def check_values(cfg):
    """A ValueError naming the key for values that would fail deep in the model, or quietly give
    nothing, instead: the K of faces (4.2) at least 1, the crop margins four fractions (top, bottom,
    left, right), the crop and feature sizes two positive numbers (W, H), the detector's input sides
    multiples of its coarsest stride, scores and IoUs fractions, CenterNet's peak window odd, the
    input's channel order and per-channel statistics, one tiling probability per square tile count
    (3.3)."""
    f, a = cfg.MODEL.FOSS, cfg.MODEL.AGE_HEAD
    for key, k in (("MODEL.FOSS.K_TRAIN", f.K_TRAIN), ("MODEL.FOSS.K_TEST", f.K_TEST)):
        if int(k) < 1:
            raise ValueError(f"{key} is a number of faces, at least 1: got {k}")
    if len(a.CROP_MARGINS) != 4 or any(not 0 <= m < 5 for m in a.CROP_MARGINS):
        raise ValueError(
            f"MODEL.AGE_HEAD.CROP_MARGINS are four fractions of the box (top, bottom, left, right; the paper's "
            f"[0.2, 0.1, 0.1, 0.1]): got {list(a.CROP_MARGINS)}"
        )
    for key, v in (("MODEL.AGE_HEAD.CROP_SIZE", a.CROP_SIZE), ("MODEL.AGE_HEAD.FEATURE_ROI_SIZE", a.FEATURE_ROI_SIZE)):
        if len(v) != 2 or any(int(x) < 1 for x in v):
            raise ValueError(f"{key} is a width and a height in pixels: got {list(v)}")
    sizes = [("MODEL.FOSS.DET_INPUT_SIZE", [f.DET_INPUT_SIZE])]
    sizes += [("MODEL.FOSS.DET_INPUT_SIZES_TRAIN", f.DET_INPUT_SIZES_TRAIN), ("MODEL.FOSS.TEST_SIZES", f.TEST_SIZES)]
    for key, values in sizes:
        bad = [int(s) for s in values if int(s) < DET_SIZE_DIVISOR or int(s) % DET_SIZE_DIVISOR]
        if bad:
            below = bad[0] // DET_SIZE_DIVISOR * DET_SIZE_DIVISOR
            near = f"{below} or {below + DET_SIZE_DIVISOR}" if below > 0 else str(DET_SIZE_DIVISOR)
            raise ValueError(
                f"{key}: the detector's input side is a multiple of {DET_SIZE_DIVISOR} pixels (its coarsest "
                f"stride): got {bad[0]}, the nearest {near}"
            )
    if not f.TEST_SIZES_MAX_BOX > 0:  # (not NaN either)
        raise ValueError(f"MODEL.FOSS.TEST_SIZES_MAX_BOX is a side in pixels: got {f.TEST_SIZES_MAX_BOX}")
    kernel = cfg.MODEL.CENTERNET.NMS_KERNEL
    if kernel < 1 or kernel % 2 == 0:  # a peak is the maximum of the window centred on it
        raise ValueError(f"MODEL.CENTERNET.NMS_KERNEL is an odd window side (CenterNet's 3): got {kernel}")
    if cfg.INPUT.FORMAT not in ("BGR", "RGB"):
        raise ValueError(f"INPUT.FORMAT is BGR or RGB (the channel order the model reads): got {cfg.INPUT.FORMAT!r}")
    if len(cfg.MODEL.PIXEL_MEAN) != 3 or len(cfg.MODEL.PIXEL_STD) != 3 or 0 in cfg.MODEL.PIXEL_STD:
        raise ValueError(
            f"MODEL.PIXEL_MEAN and MODEL.PIXEL_STD are three values each (one per channel, INPUT.FORMAT's order; "
            f"no zero std): got {list(cfg.MODEL.PIXEL_MEAN)} and {list(cfg.MODEL.PIXEL_STD)}"
        )
    check_ranges(cfg)
    if str(cfg.SOLVER.OPTIMIZER).upper() == "SGD" and cfg.SOLVER.AGE_HEAD_LR_FACTOR != 1.0:
        # (SGD is detectron2's own optimizer, built without it: the factor was silently ignored)
        raise ValueError(
            f"SOLVER.AGE_HEAD_LR_FACTOR {cfg.SOLVER.AGE_HEAD_LR_FACTOR} scales the age network's learning rate "
            "under SOLVER.OPTIMIZER ADAM or ADAMW; with SGD it has no effect: set it to 1.0, or use ADAMW"
        )
    t = cfg.INPUT.TILING
    if any(int(n) < 1 or math.isqrt(int(n)) ** 2 != int(n) for n in t.NUM_TILES):
        raise ValueError(
            f"INPUT.TILING.NUM_TILES are square numbers of tiles (the paper's 1, 4, 9): got {list(t.NUM_TILES)}"
        )
    if t.NUM_TILES and t.CANVAS_SIZE < math.isqrt(max(int(n) for n in t.NUM_TILES)):
        raise ValueError(
            f"INPUT.TILING.CANVAS_SIZE {t.CANVAS_SIZE} leaves no pixel to a tile of INPUT.TILING.NUM_TILES"
        )
    if t.PROBS and (len(t.PROBS) != len(t.NUM_TILES) or any(p < 0 for p in t.PROBS) or sum(t.PROBS) <= 0):
        raise ValueError(
            f"INPUT.TILING.PROBS {list(t.PROBS)} needs one non-negative probability for each of INPUT.TILING.NUM_TILES "
            f"{list(t.NUM_TILES)}"
        )


# key: (lowest, highest, what it is) of the keys that are one number
_NUMBERS = {
    "MODEL.FOSS.SCORE_THRESH_TEST": (0.0, 1.0, "a face score in [0, 1]"),
    "MODEL.FOSS.TEST_NMS_THRESH": (0.0, 1.0, "an IoU in [0, 1]"),
    "INPUT.MAX_SIDE": (0, float("inf"), "a side in pixels, 0 for no limit"),
    "INPUT.AUG.BLUR_PROB": (0.0, 1.0, "a probability"),
    "INPUT.AUG.ZOOM_OUT_PROB": (0.0, 1.0, "a probability"),
    "INPUT.AUG.WILD.OCCLUDER_PROB": (0.0, 1.0, "a probability"),
    "INPUT.AUG.WILD.GAMMA_PROB": (0.0, 1.0, "a probability"),
    "INPUT.AUG.WILD.GREY_PROB": (0.0, 1.0, "a probability"),
    "INPUT.AUG.WILD.DOWNSCALE_PROB": (0.0, 1.0, "a probability"),
    "INPUT.AUG.WILD.JPEG_PROB": (0.0, 1.0, "a probability"),
    "INPUT.AUG.CROP_FRACTION": (1e-6, 1.0, "the fraction of each side a random crop keeps"),
    "INPUT.AUG.COLOR_JITTER": (0.0, 1.0, "a strength: factors from 1 - it to 1 + it"),
    "INPUT.AUG.ROTATION": (0.0, 180.0, "the largest rotation in degrees, either way"),
    "MODEL.AGE_HEAD.TH_IOU": (0.0, 1.0 - 1e-6, "an IoU under 1 (3.2: 0.3)"),
    "MODEL.AGE_HEAD.AGE_STD_SCALE": (1e-12, float("inf"), "a factor over 0 on the reported age_std"),
    "DATALOADER.AGE_BALANCE": (0.0, 1.0, "an exponent from 0 (off) to 1 (the bands balanced)"),
    "INPUT.TILING.MAX_IMAGES": (1, float("inf"), "a number of images, at least 1 (3.3: 4)"),
    "INPUT.TILING.CANVAS_SIZE": (1, float("inf"), "a side in pixels"),  # (and a pixel a tile: below)
    "SOLVER.IMS_PER_BATCH": (1, float("inf"), "a number of images a step, at least 1"),
    "SOLVER.BASE_LR": (0.0, float("inf"), "a learning rate, not negative"),
    "SOLVER.AGE_HEAD_LR_FACTOR": (1e-12, float("inf"), "a learning-rate factor over 0"),
    "SOLVER.CHECKPOINT_PERIOD": (1, float("inf"), "a number of iterations, at least 1"),
    "DATALOADER.NUM_WORKERS": (0, float("inf"), "a number of loader processes (0: in the main one)"),
}
# the λ weights of the losses (3.2 and the additions): a negative one trains the wrong way
_NUMBERS.update(
    {
        f"MODEL.{key}": (0.0, float("inf"), "a loss weight, not negative")
        for key in (
            "CENTERNET.LAMBDA_SIZE",
            "CENTERNET.LAMBDA_OFF",
            "AGE_HEAD.LAMBDA_MEAN",
            "AGE_HEAD.LAMBDA_VAR",
            "AGE_HEAD.LAMBDA_CE",
            "AGE_HEAD.LAMBDA_GEN",
            "AGE_HEAD.LAMBDA_TEACHER_GEN",
            "AGE_HEAD.LAMBDA_TEACHER_AGE",
            "AGE_HEAD.LAMBDA_FLIP",
        )
    }
)
# key: (lowest, highest, what it is) of the keys that are a [low, high] range (all training's)
_RANGES = {
    "INPUT.AUG.SCALE_RANGE": (1e-6, float("inf"), "scale factors"),
    "INPUT.AUG.ZOOM_OUT_RANGE": (1.0, float("inf"), "shrink factors, 1 or more"),
    "INPUT.AUG.WILD.DOWNSCALE_RANGE": (1.0, float("inf"), "shrink factors, 1 or more"),
    "INPUT.AUG.WILD.GAMMA_RANGE": (1e-6, float("inf"), "gammas over 0"),
    "INPUT.AUG.WILD.JPEG_QUALITY": (1, 100, "JPEG qualities, 1 to 100"),
    "INPUT.AUG.WILD.OCCLUDER_SIZE": (1e-6, 1.0 - 1e-6, "fractions of a face's area over 0 and under 1"),
}


# ranges that may be empty: the augmentation off
_MAY_BE_OFF = {"INPUT.AUG.SCALE_RANGE"}


def check_ranges(cfg) -> None:
    """A ValueError naming the key for a value of ``_NUMBERS`` or ``_RANGES`` out of its range (a
    score or a probability over 1, a range written high to low, a negative rotation), which ran or
    trained on quietly otherwise."""

    def value(key):
        node = cfg
        for part in key.split("."):
            node = node[part]
        return node

    for key, (lo, hi, what) in _NUMBERS.items():
        v = value(key)
        if not lo <= v <= hi:
            raise ValueError(f"{key} is {what}: got {v}")
    for key, (lo, hi, what) in _RANGES.items():
        v = list(value(key))
        if key in _MAY_BE_OFF and not v:
            continue
        if len(v) != 2 or not lo <= v[0] <= v[1] <= hi:
            raise ValueError(f"{key} is [low, high], {what}: got {v}")
    check_crop_jitter(cfg.MODEL.AGE_HEAD.CROP_JITTER)


def check_crop_jitter(jitter) -> None:
    """MODEL.AGE_HEAD.CROP_JITTER's ValueError: [shift >= 0, 0 <= scale < 1, 0 <= aspect < 1]."""
    if len(jitter) != 3 or not all(0 <= j for j in jitter) or not max(jitter[1], jitter[2]) < 1:
        raise ValueError(
            f"MODEL.AGE_HEAD.CROP_JITTER must be [shift >= 0, 0 <= scale < 1, 0 <= aspect < 1], got {list(jitter)}"
        )


def check_device(device, here: bool = True) -> None:
    """A ValueError for a MODEL.DEVICE that is not a device name ("gpu"); with ``here``, also for
    one this process cannot run on: CUDA without a GPU or past the last one, a device type this
    build lacks (mps). A config alone is checked by name (it may be written for another machine)."""
    try:
        dev = torch.device(str(device))
    except RuntimeError:
        raise ValueError(f"MODEL.DEVICE {device} is not a torch device: cpu, cuda or cuda:N") from None
    if not here:
        return
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"MODEL.DEVICE {device}, but torch sees no CUDA GPU here: use MODEL.DEVICE cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"MODEL.DEVICE {device}, but torch sees {torch.cuda.device_count()} CUDA GPUs here")
    elif dev.type != "cpu":
        try:
            torch.empty(0, device=dev)
        except (RuntimeError, AssertionError) as e:
            why = str(e).splitlines()[0].split(". ")[0][:160]  # a missing backend lists every other one
            raise ValueError(f"MODEL.DEVICE {device}: this PyTorch cannot run there ({why}); use cpu or cuda") from None


def _same_file(a: str, b: str) -> bool:
    return os.path.isfile(a) and os.path.isfile(b) and os.path.samefile(a, b)


def _trained_beside(config_file: str) -> Optional[str]:
    """The weights a training run saved beside the config.yaml that train_net.py wrote into its
    OUTPUT_DIR (model_final.pth, else its last checkpoint); None for any other config."""
    if "://" in str(config_file) or os.path.basename(config_file) != "config.yaml":
        return None
    folder = os.path.dirname(os.path.abspath(config_file))
    final = os.path.join(folder, "model_final.pth")
    if os.path.isfile(final):
        return final
    try:
        with open(os.path.join(folder, "last_checkpoint")) as f:
            last = os.path.join(folder, f.read().strip())
    except OSError:
        return None
    return last if os.path.isfile(last) else None


def get_foss_cfg(config_file=None, weights=None, opts=(), device=None, confidence_threshold=None, need_weights=False):
    """A frozen config: ``config_file`` (default: the shipped model's, with its weights), then the
    ``opts`` KEY VALUE overrides; ``weights``, ``device`` and ``confidence_threshold`` override last.
    ``need_weights``: a ValueError when no MODEL.WEIGHTS is left (the model would answer untrained)."""
    cfg = get_cfg()
    add_foss_config(cfg)
    if config_file and "://" not in str(config_file) and not os.path.isfile(config_file):
        raise FileNotFoundError(f"config file not found: {config_file}")
    try:
        cfg.merge_from_file(config_file or DEFAULT_CONFIG)
    except AttributeError:  # yaml gave a string or a list: not a file of KEY: value
        raise ValueError(f"{config_file} is not a detectron2 YAML config (KEY: value lines)") from None
    except UnicodeDecodeError:  # a checkpoint or a picture named as the config
        raise ValueError(
            f"{config_file} is not a YAML config but a binary file (a checkpoint? pass it as weights= / MODEL.WEIGHTS)"
        ) from None
    except FileNotFoundError as e:  # a _BASE_ it names (relative to it)
        raise FileNotFoundError(f"config {config_file}: {e.filename or e} not found (a _BASE_ it names?)") from None
    # The shipped config comes with the shipped weights: by default, and named for inference.
    if not config_file or (need_weights and not cfg.MODEL.WEIGHTS and _same_file(config_file, DEFAULT_CONFIG)):
        cfg.MODEL.WEIGHTS = DEFAULT_WEIGHTS
    opts = checked_opts(opts)
    try:
        cfg.merge_from_list(opts)
    except AssertionError as e:  # fvcore's "Non-existent key: ..."
        raise KeyError(f"{e} (every key, with its default, is in foss_d2/config.py)") from None
    except ValueError as e:
        if "<class 'float'> vs. <class 'int'>" in str(e):  # yacs takes 1 for an int, not for a float key
            raise ValueError(f"{e}: this key is a float, write its value with a decimal point (1.0, -1.0)") from None
        raise
    if confidence_threshold is not None:
        if not 0.0 <= float(confidence_threshold) <= 1.0:
            raise ValueError(f"confidence_threshold is a face score in [0, 1], got {confidence_threshold}")
        cfg.MODEL.FOSS.SCORE_THRESH_TEST = float(confidence_threshold)
    if weights is not None:
        cfg.MODEL.WEIGHTS = weights
    if device is not None:
        cfg.MODEL.DEVICE = device
    trained = _trained_beside(config_file) if need_weights and config_file else None
    if trained and weights is None and "MODEL.WEIGHTS" not in opts[::2] and not _same_file(cfg.MODEL.WEIGHTS, trained):
        raise ValueError(
            f"{config_file} was written by a training run, whose weights are {trained}; its MODEL.WEIGHTS "
            f"({cfg.MODEL.WEIGHTS or 'none'}) is what that run started from: give the weights (MODEL.WEIGHTS "
            f"{trained} in the tools, weights= in FaceAgeEstimator)"
        )
    if need_weights and not cfg.MODEL.WEIGHTS:
        raise ValueError(
            f"no weights: {config_file or 'the config'} sets no MODEL.WEIGHTS, and an untrained model finds nothing "
            "(give the checkpoint: weights= in FaceAgeEstimator, MODEL.WEIGHTS path/to/model.pth in the tools)"
        )
    if cfg.MODEL.WEIGHTS and "://" not in cfg.MODEL.WEIGHTS and not os.path.isfile(cfg.MODEL.WEIGHTS):
        raise FileNotFoundError(
            f"model weights not found: {cfg.MODEL.WEIGHTS} (train one with tools/train_net.py and pass MODEL.WEIGHTS)"
        )
    # before a run prepares its output, not at build time
    check_device(cfg.MODEL.DEVICE, here=False)
    check_dtype(cfg.MODEL.AGE_HEAD.INFERENCE_DTYPE)
    check_dtype(cfg.MODEL.FOSS.DET_INFERENCE_DTYPE, "MODEL.FOSS.DET_INFERENCE_DTYPE")
    check_values(cfg)
    cfg.freeze()
    return cfg
