"""Size-weighted sampling across datasets (paper section 4.2).

"One epoch corresponds to the number of images in the biggest dataset, and images are chosen
randomly from each dataset with weighted probabilities based on the size of each dataset."

Not in the paper: within a dataset, images may be drawn with weights of their own (age balance,
DATALOADER.AGE_BALANCE), which leaves each dataset's probability as it is.
"""

import itertools
from typing import List, Optional, Sequence

import numpy as np
import torch
from torch.utils.data.sampler import Sampler

from detectron2.utils import comm

from ..utils.ages import AGE_BANDS, age_band


def age_balance_weights(dicts: Sequence[dict], exponent: float) -> List[float]:
    """Per-image sampling weights within one dataset that draw its age bands more evenly.

    A face of age band b weighs (1 / number of faces of b in the dataset) ** ``exponent``; an image
    weighs the mean of its age-labelled faces' weights. Images without an age keep weight 1 and the
    age-labelled images as a whole keep their share of the dataset (their weights are rescaled to
    sum to their count), so age balance does not trade labelled images for unlabelled ones.
    """
    if not 0.0 <= exponent <= 1.0:
        raise ValueError(f"DATALOADER.AGE_BALANCE must be in [0, 1], got {exponent}")
    bands = [[age_band(a["age"]) for a in d.get("annotations", []) if a.get("age", -1) >= 0] for d in dicts]
    counts = np.bincount([b for bs in bands for b in bs], minlength=len(AGE_BANDS)).astype(np.float64)
    face_w = np.zeros(len(AGE_BANDS))
    face_w[counts > 0] = counts[counts > 0] ** -float(exponent)
    weights = np.ones(len(dicts))
    labelled = np.array([bool(bs) for bs in bands], dtype=bool)
    raw = np.array([face_w[bs].mean() for bs in bands if bs])
    if len(raw):
        weights[labelled] = raw * (len(raw) / raw.sum())
    return weights.tolist()


class DatasetWeightedTrainingSampler(Sampler):
    """Infinite stream of indices into the concatenation of several datasets.

    Each draw picks dataset d with probability w_d (default: proportional to its size), then an
    image of d uniformly, or in proportion to ``image_weights[d]`` when given. Like detectron2's
    TrainingSampler, each worker process of each rank sees a disjoint slice of one seeded stream, so
    multi-GPU runs do not repeat each other.
    """

    def __init__(
        self,
        dataset_sizes: Sequence[int],
        weights: Optional[Sequence[float]] = None,
        seed: Optional[int] = None,
        image_weights: Optional[Sequence[Optional[Sequence[float]]]] = None,
    ):
        sizes = [int(s) for s in dataset_sizes]
        if not sizes or any(s <= 0 for s in sizes):
            raise ValueError(f"every dataset must be non-empty, got sizes {sizes}")
        if weights is None or len(weights) == 0:
            weights = sizes
        if len(weights) != len(sizes) or any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError(f"need one non-negative weight per dataset, got {list(weights)} for {len(sizes)} datasets")
        w = torch.tensor([float(x) for x in weights], dtype=torch.float64)
        self.dataset_probs = w / w.sum()
        # Per-image weight: p_d / |D_d|, or p_d * v_i / sum(v) with image weights v.
        parts = []
        for d, (s, p) in enumerate(zip(sizes, self.dataset_probs)):
            v = image_weights[d] if image_weights is not None else None
            if v is None:
                parts.append(torch.full((s,), float(p) / s, dtype=torch.float64))
                continue
            v = torch.as_tensor(v, dtype=torch.float64)
            if v.shape != (s,) or (v < 0).any() or not torch.isfinite(v).all() or v.sum() <= 0:
                raise ValueError(f"dataset {d}: need {s} non-negative image weights, not all 0")
            parts.append(float(p) * v / v.sum())
        self._weights = torch.cat(parts)
        self.epoch_length = max(sizes)
        self._seed = int(comm.shared_random_seed() if seed is None else seed)
        self._rank = comm.get_rank()
        self._world_size = comm.get_world_size()

    def __iter__(self):
        yield from itertools.islice(self._infinite_indices(), self._rank, None, self._world_size)

    def _infinite_indices(self):
        g = torch.Generator()
        g.manual_seed(self._seed)
        while True:
            yield from torch.multinomial(self._weights, self.epoch_length, replacement=True, generator=g).tolist()
