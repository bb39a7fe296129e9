"""Age and gender losses of FOSS (paper section 3.2): λ_mean·L_mean + λ_var·L_var + λ_ce·L_ce for age
(mean-variance loss, Pan et al. CVPR 2018) and λ_gen·BCE for gender, over predicted boxes whose best
IoU with a ground-truth face exceeds th_iou and whose face has the label."""

from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F

from detectron2.structures import Boxes, Instances, pairwise_iou
from detectron2.utils.events import get_event_storage


def age_distribution(logits: torch.Tensor):
    """Softmax over the age classes (class j = j years), its mean and its variance."""
    return distribution_moments(F.softmax(logits, dim=1))


def distribution_moments(probs: torch.Tensor):
    """``probs`` over the age classes (class j = j years), with their mean and variance."""
    j = torch.arange(probs.shape[1], dtype=probs.dtype, device=probs.device)
    mean = (probs * j).sum(1)
    var = (probs * (j[None] - mean[:, None]) ** 2).sum(1)
    return probs, mean, var


def mean_variance_terms(logits: torch.Tensor, ages: torch.Tensor):
    """Per-sample mean loss (m - y)²/2, variance loss Σ p_j (j - m)², and softmax cross-entropy.

    Mean-variance loss of Pan et al. (CVPR 2018); ``ages`` in years, the CE class is round(age).
    """
    _, mean, var = age_distribution(logits)
    l_mean = (mean - ages) ** 2 / 2
    cls = ages.round().clamp(0, logits.shape[1] - 1).long()
    l_ce = F.cross_entropy(logits, cls, reduction="none")
    return l_mean, var, l_ce


def match_labels(proposal_boxes: List[torch.Tensor], targets: List[Instances], th_iou: float):
    """Over all predicted boxes: the age and gender label of the ground-truth face of best IoU (-1
    where that face has none) and whether that IoU exceeds ``th_iou`` (b_iou of section 3.2)."""
    ages, genders, valid = [], [], []
    for boxes, tgt in zip(proposal_boxes, targets):
        k = boxes.shape[0]
        if len(tgt) == 0 or k == 0:
            ages.append(boxes.new_full((k,), -1.0))
            genders.append(boxes.new_full((k,), -1.0))
            valid.append(torch.zeros(k, dtype=torch.bool, device=boxes.device))
            continue
        iou = pairwise_iou(Boxes(boxes), tgt.gt_boxes)
        best_iou, idx = iou.max(dim=1)
        valid.append(best_iou > th_iou)
        ages.append(tgt.gt_ages.float()[idx] if tgt.has("gt_ages") else boxes.new_full((k,), -1.0))
        genders.append(tgt.gt_genders.float()[idx] if tgt.has("gt_genders") else boxes.new_full((k,), -1.0))
    return torch.cat(ages), torch.cat(genders), torch.cat(valid)


def age_gender_losses(
    age_logits: torch.Tensor,
    gender_logits: Optional[torch.Tensor],
    proposal_boxes: List[torch.Tensor],
    targets: List[Instances],
    th_iou: float,
    lambdas: Dict[str, float],
    matches: Optional[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = None,
) -> Dict[str, torch.Tensor]:
    """L_age and L_gen of section 3.2.

    Each predicted box takes the ground-truth face of best IoU (b_iou: IoU > th_iou); faces with
    age (gender) < 0 carry no such label (b_age, b_gen). Each loss is normalised by its number of
    unmasked faces; with none, the loss is an exact 0 that still belongs to the graph. ``matches``:
    ``match_labels``'s answer for these boxes, when the caller has it already.
    """
    ages, genders, valid = matches if matches is not None else match_labels(proposal_boxes, targets, th_iou)
    # an age past the last class (UTKFace's 101-116) has no class to be: no age label (4.1: ages 0-100)
    age_mask = valid & (ages >= 0) & (ages <= age_logits.shape[1] - 1)
    n_age = int(age_mask.sum())
    if n_age > 0:
        l_mean, l_var, l_ce = mean_variance_terms(age_logits[age_mask], ages[age_mask])
        parts = {
            "mean": lambdas["mean"] * l_mean.sum() / n_age,
            "var": lambdas["var"] * l_var.sum() / n_age,
            "ce": lambdas["ce"] * l_ce.sum() / n_age,
        }
        loss_age = parts["mean"] + parts["var"] + parts["ce"]
    else:
        parts = {}
        loss_age = age_logits.sum() * 0.0
    losses = {"loss_age": loss_age}
    if gender_logits is not None:
        gen_mask = valid & (genders >= 0)
        n_gen = int(gen_mask.sum())
        if n_gen > 0:
            bce = F.binary_cross_entropy_with_logits(gender_logits[gen_mask], genders[gen_mask], reduction="sum")
            losses["loss_gender"] = lambdas["gen"] * bce / n_gen
        else:
            losses["loss_gender"] = gender_logits.sum() * 0.0
    try:
        storage = get_event_storage()
    except AssertionError:  # outside a trainer
        storage = None
    if storage is not None:
        storage.put_scalar("age_head/num_age_faces", n_age)
        for name, value in parts.items():
            storage.put_scalar(f"age_head/loss_age_{name}", float(value.detach()))
    return losses


def _count_faces(name: str, mask: torch.Tensor) -> int:
    """How many faces ``mask`` keeps, also logged to the trainer's storage when there is one."""
    n = int(mask.sum())
    try:
        get_event_storage().put_scalar(name, n)
    except AssertionError:  # outside a trainer
        pass
    return n


def teacher_gender_loss(
    gender_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    matches: Tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    weight: float,
    labelled_too: bool = False,
) -> Dict[str, torch.Tensor]:
    """Not in the paper (MODEL.FOSS.TEACHER_WEIGHTS): ``weight`` x the mean over faces (best IoU >
    th_iou, from ``matches`` = ``match_labels(...)``) without a gender label of KL(teacher ||
    student) between the two Bernoulli P(female), i.e. BCE(student, p_teacher) - BCE(teacher,
    p_teacher): 0 where the student answers as the teacher does. Faces with a label learn from the
    label alone, unless ``labelled_too``."""
    _, genders, valid = matches
    mask = valid if labelled_too else valid & (genders < 0)
    n = _count_faces("age_head/num_teacher_faces", mask)
    if n == 0:
        return {"loss_teacher_gender": gender_logits.sum() * 0.0}
    target = teacher_logits[mask].detach().sigmoid()
    bce = F.binary_cross_entropy_with_logits(gender_logits[mask], target, reduction="sum")
    entropy = F.binary_cross_entropy_with_logits(teacher_logits[mask].detach(), target, reduction="sum")
    return {"loss_teacher_gender": weight * (bce - entropy) / n}


def teacher_age_loss(
    age_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    matches: Tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    weight: float,
    gate: float,
) -> Dict[str, torch.Tensor]:
    """Not in the paper (MODEL.AGE_HEAD.LAMBDA_TEACHER_AGE): ``weight`` x the mean of KL(teacher ||
    student) between the two age distributions over matched faces whose age label the teacher's
    mean reads within ``gate`` years: the teacher passes on its reading where it is right and is
    not heard where it is wrong (a child it reads as an adult) or where no label says which."""
    ages, _, valid = matches
    t_logp = F.log_softmax(teacher_logits.detach(), dim=1)
    _, t_mean, _ = distribution_moments(t_logp.exp())
    mask = valid & (ages >= 0) & ((t_mean - ages).abs() <= gate)
    n = _count_faces("age_head/num_teacher_age_faces", mask)
    if n == 0:
        return {"loss_teacher_age": age_logits.sum() * 0.0}
    kl = F.kl_div(F.log_softmax(age_logits[mask], dim=1), t_logp[mask], reduction="sum", log_target=True)
    return {"loss_teacher_age": weight * kl / n}


def _js_divergence(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Per row, the Jensen-Shannon divergence (natural log) of two distributions over the last dim."""
    m = (p + q) / 2
    kl = lambda a: (a * (a.clamp_min(1e-12).log() - m.clamp_min(1e-12).log())).sum(-1)  # noqa: E731
    return (kl(p) + kl(q)) / 2


def flip_consistency_loss(
    age_logits: torch.Tensor,
    mirror_age_logits: torch.Tensor,
    gender_logits: Optional[torch.Tensor],
    mirror_gender_logits: Optional[torch.Tensor],
    valid: torch.Tensor,
    weight: float,
) -> Dict[str, torch.Tensor]:
    """Not in the paper (MODEL.AGE_HEAD.LAMBDA_FLIP): ``weight`` x the mean over matched faces
    (``valid``, best IoU > th_iou, labelled or not) of JS(age distribution of a crop, that of its
    mirror image) + JS(P(female) of the two, as Bernoulli distributions); 0 where the network
    answers a face and its mirror image alike (in training, each half draws its own dropout, so the
    term also pulls against that noise). Symmetric: both readings are pulled together."""
    n = _count_faces("age_head/num_flip_faces", valid)
    if n == 0:
        return {"loss_flip": age_logits.sum() * 0.0}
    # float32: under fp16 autocast a confident P(female) is exactly 1, and the clamp to 1e-12 is 0
    # in fp16, so 0 x log(0) made the loss NaN
    age_logits, mirror_age_logits = age_logits.float(), mirror_age_logits.float()
    if gender_logits is not None:
        gender_logits, mirror_gender_logits = gender_logits.float(), mirror_gender_logits.float()
    js = _js_divergence(F.softmax(age_logits[valid], dim=1), F.softmax(mirror_age_logits[valid], dim=1))
    if gender_logits is not None:
        p, q = gender_logits[valid].sigmoid(), mirror_gender_logits[valid].sigmoid()
        js = js + _js_divergence(torch.stack([p, 1 - p], -1), torch.stack([q, 1 - q], -1))
    return {"loss_flip": weight * js.sum() / n}
