"""The FOSS meta-architecture (paper section 3.1, Fig. 2): one model, two backbones.

The detector sees the image resized to DET_INPUT_SIZE² (480x480); the age network sees faces
cropped from the full-resolution image. Both images live inside the model: the data pipeline hands
over only the full-resolution one, so they can never fall out of step. ``inference`` is the paper's
single test pass; the test-time options that are not in the paper wrap it (test_time_augmentation.py).
"""

import os
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY, build_backbone
from detectron2.modeling.postprocessing import detector_postprocess
from detectron2.structures import Boxes, Instances

from ..config import DET_SIZE_DIVISOR
from ..data.augmentation import apply_color_jitter
from ..proposal_generator import build_face_detector
from ..roi_heads import build_age_head
from ..utils.freezing import FrozenParts
from ..utils.precision import check_dtype, run_in


def _same_tensors(a: nn.Module, b: nn.Module) -> bool:
    """Whether two modules hold equal parameters and buffers, name by name."""
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def build_teacher(cfg) -> nn.Module:
    """The frozen teacher of MODEL.FOSS.TEACHER_WEIGHTS: the same architecture as ``cfg``'s model,
    with an age head, loaded from that checkpoint, in eval mode."""
    path = cfg.MODEL.FOSS.TEACHER_WEIGHTS
    if cfg.MODEL.FOSS.DETECTOR_ONLY or not (cfg.MODEL.AGE_HEAD.GENDER_ON or cfg.MODEL.AGE_HEAD.LAMBDA_TEACHER_AGE > 0):
        raise ValueError(
            "MODEL.FOSS.TEACHER_WEIGHTS teaches gender (and ages with MODEL.AGE_HEAD.LAMBDA_TEACHER_AGE > 0): "
            "it needs an age head, with its gender branch unless it teaches ages"
        )
    if not os.path.isfile(path):
        raise FileNotFoundError(f"MODEL.FOSS.TEACHER_WEIGHTS: no such file: {path}")
    tcfg = cfg.clone()
    tcfg.defrost()
    tcfg.MODEL.FOSS.TEACHER_WEIGHTS = ""
    tcfg.MODEL.FOSS.DETECTOR_ONLY = False
    # its targets are training numbers: float32 whatever the config's test-time precision
    tcfg.MODEL.AGE_HEAD.INFERENCE_DTYPE = "float32"
    tcfg.MODEL.FOSS.DET_INFERENCE_DTYPE = "float32"
    teacher = META_ARCH_REGISTRY.get(tcfg.MODEL.META_ARCHITECTURE)(tcfg).to(torch.device(cfg.MODEL.DEVICE))
    # Every tensor must come from the file: a teacher with freshly initialised parts teaches noise.
    checkpointer = DetectionCheckpointer(teacher)
    missing = checkpointer._load_model(checkpointer._load_file(path)).missing_keys
    if missing:
        raise ValueError(
            f"MODEL.FOSS.TEACHER_WEIGHTS={path} lacks {len(missing)} of the model's tensors, e.g. {missing[:3]}"
        )
    teacher.requires_grad_(False)
    return teacher.eval()


@META_ARCH_REGISTRY.register()
class FOSS(FrozenParts, nn.Module):
    """CenterNet face detector + TResNet-S age/gender head, trained frozen or end-to-end (Sec. 3.3)."""

    @configurable
    def __init__(
        self,
        *,
        backbone: nn.Module,
        proposal_generator: nn.Module,
        age_head: Optional[nn.Module],
        pixel_mean,
        pixel_std,
        det_input_size: int = 480,
        det_input_sizes_train: Sequence[int] = (),
        k_train: int = 1,
        k_test: int = 20,
        score_thresh_test: float = 0.2,
        freeze_detector: bool = True,
        add_gt_boxes: bool = False,
        age_on_all_k: bool = True,
        input_format: str = "BGR",
        det_input_fit_small: bool = False,
        channels_last: bool = False,
        prepack_detector: bool = False,
        det_inference_dtype: str = "float32",
        teacher: Optional[nn.Module] = None,
    ):
        super().__init__()
        self.backbone = backbone
        self.proposal_generator = proposal_generator
        self.age_head = age_head
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)
        self.det_input_size = det_input_size
        self.det_input_sizes_train = [int(x) for x in det_input_sizes_train]
        self.k_train = k_train
        self.k_test = k_test
        self.score_thresh_test = score_thresh_test
        # Freezing only makes sense when there is an age head to train.
        self.freeze_detector = freeze_detector and age_head is not None
        self.add_gt_boxes = add_gt_boxes
        self.age_on_all_k = age_on_all_k
        self.input_format = input_format
        self.det_input_fit_small = det_input_fit_small
        self.prepack_detector = bool(prepack_detector)  # read by engine/fusion.py's optimize_for_inference
        self.det_inference_dtype = check_dtype(det_inference_dtype, "MODEL.FOSS.DET_INFERENCE_DTYPE")
        if self.freeze_detector:
            self.freeze_parts([self.backbone, self.proposal_generator])
        # Inside a tuple the teacher is no submodule: it stays out of the optimizer, the checkpoints
        # and train() (it is built frozen, in eval mode, on the model's device).
        self._teacher = (teacher,) if teacher is not None else ()
        self._teacher_shares_detector: Optional[bool] = None
        if channels_last:
            # 4-D tensors only; a later .to(device) and loading a checkpoint keep the layout
            self.to(memory_format=torch.channels_last)

    @classmethod
    def from_config(cls, cfg):
        backbone = build_backbone(cfg)
        shapes = backbone.output_shape()
        age_head = None if cfg.MODEL.FOSS.DETECTOR_ONLY else build_age_head(cfg, shapes)
        return {
            "backbone": backbone,
            # The attribute keeps detectron2's name, so checkpoints keep their keys.
            "proposal_generator": build_face_detector(cfg, shapes),
            "age_head": age_head,
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "det_input_size": cfg.MODEL.FOSS.DET_INPUT_SIZE,
            "det_input_sizes_train": cfg.MODEL.FOSS.DET_INPUT_SIZES_TRAIN,
            "k_train": cfg.MODEL.FOSS.K_TRAIN,
            "k_test": cfg.MODEL.FOSS.K_TEST,
            "score_thresh_test": cfg.MODEL.FOSS.SCORE_THRESH_TEST,
            "freeze_detector": cfg.MODEL.FOSS.FREEZE_DETECTOR,
            "add_gt_boxes": cfg.MODEL.FOSS.ADD_GT_BOXES,
            "age_on_all_k": cfg.MODEL.FOSS.AGE_ON_ALL_K,
            "input_format": cfg.INPUT.FORMAT,
            "det_input_fit_small": cfg.MODEL.FOSS.DET_INPUT_FIT_SMALL,
            "channels_last": cfg.MODEL.FOSS.CHANNELS_LAST,
            "prepack_detector": cfg.MODEL.FOSS.PREPACK_DETECTOR,
            "det_inference_dtype": cfg.MODEL.FOSS.DET_INFERENCE_DTYPE,
            "teacher": build_teacher(cfg) if cfg.MODEL.FOSS.TEACHER_WEIGHTS else None,
        }

    @property
    def device(self):
        return self.pixel_mean.device

    def detector_parameters(self):
        yield from self.backbone.parameters()
        yield from self.proposal_generator.parameters()

    def preprocess_detector(self, images: List[torch.Tensor], size: Optional[int] = None) -> torch.Tensor:
        """Resize each full-resolution image to DET_INPUT_SIZE² (or ``size``²) and normalise it (paper 4.2)."""
        s = size or self.det_input_size
        out = []
        for img in images:
            x = img.to(self.device, non_blocking=True).float()[None]
            x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False, antialias=True)
            out.append(x[0])
        return (torch.stack(out) - self.pixel_mean) / self.pixel_std

    def _to_detector(self, inst: Instances, sx: float, sy: float, size: int) -> Instances:
        out = Instances((size, size))
        out.gt_boxes = Boxes(inst.gt_boxes.tensor * inst.gt_boxes.tensor.new_tensor([sx, sy, sx, sy]))
        out.gt_classes = inst.gt_classes
        return out

    def forward(self, batched_inputs: List[Dict]):
        """
        Args:
            batched_inputs: dicts with "image" (uint8 [C,H,W], full resolution, INPUT.FORMAT order),
                and in training "instances" (gt_boxes in the same pixels, gt_classes, gt_ages,
                gt_genders with -1 = unknown). Optional "height"/"width": output resolution.
        Returns:
            training: dict of losses. inference: [{"instances": Instances}] with pred_boxes, scores,
            pred_classes, pred_ages, pred_age_stds, pred_age_probs, pred_female_probs.
        """
        if not self.training:
            return self.inference(batched_inputs)
        step = self._detect_for_training(batched_inputs)
        losses = step.pop("losses")
        if self.age_head is None:
            return losses
        losses.update(self.age_head(**step))
        return losses

    def _detect_for_training(self, batched_inputs: List[Dict]):
        """A training step up to the age head: the detector's losses (none when it is frozen) and
        the age head's arguments: the full-resolution images (colour-jittered), the detector's K_TRAIN
        faces in their pixels (with ADD_GT_BOXES the ground truth too), its features at this step's
        side, their scales, the targets and the teacher (None without one)."""
        images = [x["image"].to(self.device) for x in batched_inputs]
        # INPUT.AUG.COLOR_ON_DEVICE: the loader drew the colour jitter, the device applies it
        images = [
            apply_color_jitter(im, x["color_jitter"]) if "color_jitter" in x else im
            for im, x in zip(images, batched_inputs)
        ]
        targets = [x["instances"].to(self.device) for x in batched_inputs]
        s = self.train_input_size()
        scales = [(s / im.shape[2], s / im.shape[1]) for im in images]
        det_targets = [self._to_detector(t, sx, sy, s) for t, (sx, sy) in zip(targets, scales)]
        det_images = self.preprocess_detector(images, s)
        size = (s, s)
        train_detector = not self.freeze_detector
        with torch.set_grad_enabled(train_detector):
            features = self.backbone(det_images)
            proposals, losses = self.proposal_generator(
                size, features, self.k_train, det_targets if train_detector else None
            )
        if self.age_head is None:
            return {"losses": losses}
        proposals = [self._to_image(p, sx, sy, im.shape[1:]) for p, (sx, sy), im in zip(proposals, scales, images)]
        if self.add_gt_boxes:
            proposals = [self._with_gt(p, t) for p, t in zip(proposals, targets)]
        teacher = None
        if self._teacher:
            teacher = (self._teacher[0].age_head, self._teacher_features(images, features, s))
        return {
            "losses": losses,
            "images": images,
            "proposals": proposals,
            "features": features,
            "feature_scales": self.feature_scales(scales),
            "targets": targets,
            "teacher": teacher,
        }

    @torch.no_grad()
    def age_training_inputs(self, batched_inputs: List[Dict]) -> Dict[str, torch.Tensor]:
        """What one training step of the age network on the frozen detector reads, for training it
        from a cache (tools/research/train_age_cached.py): ``TResNetAgeHead.training_inputs`` of
        this batch, drawn as ``forward`` draws it (detector side, crop jitter, teacher)."""
        if self.age_head is None or not self.freeze_detector:
            raise ValueError("age_training_inputs needs an age head and a frozen detector (MODEL.FOSS.FREEZE_DETECTOR)")
        step = self._detect_for_training(batched_inputs)
        del step["losses"]
        return self.age_head.training_inputs(**step)

    @torch.no_grad()
    def _teacher_features(self, images, features, size: int):
        """The teacher's detector feature, at this step's side ``size`` (the crops' feature scales
        are the student's). A frozen detector with the teacher's own weights (the teacher recipe on
        the shipped detector) gives the student's feature: its pass is not repeated."""
        t = self._teacher[0]
        if self._teacher_shares_detector is None:
            # decided once, on the first step, when the trainer has loaded MODEL.WEIGHTS; the
            # teacher is built from the same config, so its input normalisation is the student's
            self._teacher_shares_detector = self.freeze_detector and _same_tensors(self.backbone, t.backbone)
        if self._teacher_shares_detector:
            return features
        return t.backbone(t.preprocess_detector(images, size))

    def train_input_size(self) -> int:
        """This training step's detector input side: DET_INPUT_SIZE, or one of DET_INPUT_SIZES_TRAIN
        drawn for the whole batch."""
        if not self.det_input_sizes_train:
            return self.det_input_size
        return self.det_input_sizes_train[int(torch.randint(len(self.det_input_sizes_train), ()))]

    def feature_scales(self, scales):
        """Per image, the (sx, sy) from full-resolution pixels to the detector feature's grid."""
        stride = self.proposal_generator.stride
        return [(sx / stride, sy / stride) for sx, sy in scales]

    @staticmethod
    def _to_image(p: Instances, sx: float, sy: float, image_hw) -> Instances:
        out = Instances(tuple(image_hw))
        out.pred_boxes = Boxes(p.pred_boxes.tensor / p.pred_boxes.tensor.new_tensor([sx, sy, sx, sy]))
        out.scores = p.scores
        out.pred_classes = p.pred_classes
        return out

    @staticmethod
    def _with_gt(p: Instances, t: Instances) -> Instances:
        gt = Instances(p.image_size)
        gt.pred_boxes = t.gt_boxes.clone()
        gt.scores = torch.ones(len(t), device=p.scores.device)
        gt.pred_classes = t.gt_classes
        return Instances.cat([p, gt])

    def detect_pass(self, images: List[torch.Tensor], size: Optional[int] = None, min_score="threshold"):
        """One detector pass on the images resized to ``size``² (default ``test_input_size``): its
        features, the K_TEST most probable faces in full-resolution pixels (with ``min_score``, only
        those above it, as many per image as the batch's image with the most), and the (sx, sy) that
        map those pixels to the detector input. ``min_score`` "threshold": SCORE_THRESH_TEST unless
        AGE_ON_ALL_K (every peak under it goes unreported: K_TEST is a cap, not a cost)."""
        size = size or self.test_input_size(images)
        features = self.test_features(self.preprocess_detector(images, size))
        if min_score == "threshold":
            min_score = None if self.age_on_all_k else self.score_thresh_test
        # a detector of the registry's contract (size, features, K) is called without these
        opts = {} if min_score is None else {"min_score": min_score}
        if self.test_dtype() != "float32":
            opts["dense_dtype"] = self.test_dtype()  # its heatmap head's dense conv
        proposals, _ = self.proposal_generator((size, size), features, self.k_test, **opts)
        return (features, *self.proposals_to_image(proposals, images, size))

    def test_dtype(self) -> str:
        """The dtype of the detector's test-time passes: DET_INFERENCE_DTYPE, float32 in training."""
        return "float32" if self.training else self.det_inference_dtype

    def test_features(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """The backbone's features of the detector input ``x``, run in ``test_dtype()`` and handed
        on in float32."""
        return run_in(self.test_dtype(), x.device, self.backbone, x)

    def test_input_size(self, images: List[torch.Tensor]) -> int:
        """DET_INPUT_SIZE; with DET_INPUT_FIT_SMALL, images all smaller than it get their longest side
        rounded up to a multiple of 32 (the detector's coarsest stride) instead of an upscale."""
        if not self.det_input_fit_small:
            return self.det_input_size
        longest = max(max(im.shape[1:]) for im in images)
        return min(self.det_input_size, -(-longest // DET_SIZE_DIVISOR) * DET_SIZE_DIVISOR)

    def proposals_to_image(self, proposals: List[Instances], images: List[torch.Tensor], size: int):
        """Faces found on the ``size``² detector input, in each image's full-resolution pixels; also
        the (sx, sy) of each image."""
        scales = [(size / im.shape[2], size / im.shape[1]) for im in images]
        proposals = [self._to_image(p, sx, sy, im.shape[1:]) for p, (sx, sy), im in zip(proposals, scales, images)]
        return proposals, scales

    @torch.no_grad()
    def inference(self, batched_inputs: List[Dict], do_postprocess: bool = True):
        """The paper's test pass (Sec. 3.1, 4.2): the detector once at DET_INPUT_SIZE², its K_TEST most
        probable faces through the age network once, the faces above SCORE_THRESH_TEST reported."""
        images = [x["image"].to(self.device) for x in batched_inputs]
        features, proposals, scales = self.detect_pass(images)
        proposals = [self.age_candidates(p) for p in proposals]
        if self.age_head is not None:
            proposals = self.age_head(images, proposals, features, self.feature_scales(scales))
        return self.postprocess(proposals, batched_inputs, images, do_postprocess)

    def age_candidates(self, p: Instances) -> Instances:
        """The faces the age network reads: all K (the paper), or with AGE_ON_ALL_K off only the
        confident ones (faster on CPU)."""
        return p if self.age_on_all_k else p[p.scores > self.score_thresh_test]

    def confident_faces(self, p: Instances) -> Instances:
        """The faces scored above SCORE_THRESH_TEST, their boxes clipped to the image."""
        p = p[p.scores > self.score_thresh_test]
        p.pred_boxes.clip(p.image_size)
        return p

    def postprocess(self, proposals: List[Instances], batched_inputs: List[Dict], images, do_postprocess: bool = True):
        """The confident faces of each image, rescaled to its requested "height"/"width"."""
        results = []
        for p, x, im in zip(proposals, batched_inputs, images):
            p = self.confident_faces(p)
            if do_postprocess:
                p = detector_postprocess(p, x.get("height", im.shape[1]), x.get("width", im.shape[2]))
            results.append({"instances": p})
        return results
