"""Size-weighted sampling across datasets (paper section 4.2).

"One epoch corresponds to the number of images in the biggest dataset, and images are chosen
randomly from each dataset with weighted probabilities based on the size of each dataset."
"""

import itertools
from typing import Optional, Sequence

import torch
from detectron2.utils import comm
from torch.utils.data.sampler import Sampler


class DatasetWeightedTrainingSampler(Sampler):
    """Infinite stream of indices into the concatenation of several datasets.

    Each draw picks dataset d with probability w_d (default: proportional to its size), then an
    image of d uniformly. Like detectron2's TrainingSampler, each worker process of each rank sees
    a disjoint slice of one seeded stream, so multi-GPU runs do not repeat each other.
    """

    def __init__(
        self, dataset_sizes: Sequence[int], weights: Optional[Sequence[float]] = None, seed: Optional[int] = None
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
        # Per-image weight: p_d / |D_d|.
        self._weights = torch.cat(
            [torch.full((s,), float(p) / s, dtype=torch.float64) for s, p in zip(sizes, self.dataset_probs)]
        )
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
