"""Training loader over several datasets with size-weighted sampling and tiling (paper 3.3, 4.2)."""

import logging
import random

import torch

from detectron2.data import DatasetCatalog, build_detection_train_loader

from ..utils.ages import AGE_BANDS, age_band, band_name
from .cache import DecodedImageCache
from .dataset_mapper import FOSSDatasetMapper
from .samplers import DatasetWeightedTrainingSampler, age_balance_weights
from .utils import DatasetError

logger = logging.getLogger(__name__)


def load_train_datasets(names):
    """Each dataset's records, tagged with ``dataset_name`` (the tiling mapper keys on it)."""
    lists = []
    for name in names:
        dicts = DatasetCatalog.get(name)
        if not dicts:
            raise DatasetError(f"training dataset {name!r} is empty")
        for d in dicts:
            d["dataset_name"] = name
        lists.append(dicts)
    return lists


def band_shares(dicts, weights):
    """{band: share of the draws} of a dataset's age-labelled images (first face's band), for the log."""
    mass = [0.0] * len(AGE_BANDS)
    for d, w in zip(dicts, weights):
        ages = [a["age"] for a in d.get("annotations", []) if a.get("age", -1) >= 0]
        if ages:
            mass[age_band(ages[0])] += w
    total = sum(mass) or 1.0
    return {band_name(lo, hi): round(m / total, 3) for (lo, hi), m in zip(AGE_BANDS, mass)}


class RetryingMapDataset(torch.utils.data.Dataset):
    """``mapper`` applied to each record; when it returns None (an unreadable image), another
    record drawn at random is mapped instead and the bad one is not drawn again. detectron2 0.6's
    MapDataset does the same but draws with ``random.sample`` from a set, which Python 3.11 refuses
    (TypeError): there one missing file ended the training run."""

    def __init__(self, records: list, mapper, seed: int = 0, max_tries: int = 100):
        self.records, self.mapper, self.max_tries = records, mapper, max_tries
        self.bad = set()
        self.rng = random.Random(seed if seed >= 0 else None)

    def __len__(self):
        return len(self.records)

    def __getitem__(self, idx: int):
        cur = int(idx)
        tries = 0
        while tries < self.max_tries:
            tries += 1
            data = self.mapper(self.records[cur])
            if data is not None:
                return data
            self.bad.add(cur)
            if len(self.bad) >= len(self.records):
                break
            while cur in self.bad:
                cur = self.rng.randrange(len(self.records))
        first = self.records[min(self.bad)].get("file_name", "?") if self.bad else "?"
        raise RuntimeError(
            f"{tries} training records drawn one after another could not be read ({len(self.bad)} of "
            f"{len(self.records)} so far; one of them: {first}): is DATASETS.ROOT, or the image root of the "
            "DATASETS.COCO entry, right?"
        )


def _known(v) -> bool:
    """A label given (-1, None or a missing key: unknown; a user's own loader may leave None)."""
    return isinstance(v, (int, float)) and v >= 0


def check_train_config(cfg, lists):
    """Mistakes in the training config that would otherwise fail deep in the sampler, or train
    nothing without a word: DATASET_WEIGHTS that do not match DATASETS.TRAIN, tiling from datasets
    not trained on, and an age stage (detector frozen) on data without any age or gender label."""
    names = list(cfg.DATASETS.TRAIN)
    weights = list(cfg.DATALOADER.DATASET_WEIGHTS)
    if weights and (len(weights) != len(names) or any(w < 0 for w in weights) or sum(weights) <= 0):
        raise DatasetError(
            f"DATALOADER.DATASET_WEIGHTS {weights} for DATASETS.TRAIN {tuple(names)}: give one non-negative "
            'weight per dataset, not all 0, or DATALOADER.DATASET_WEIGHTS "[]" to sample by dataset size'
        )
    if cfg.INPUT.TILING.ENABLED:
        stray = [n for n in cfg.INPUT.TILING.DATASETS if n not in names]
        if stray:
            logger.warning(
                "INPUT.TILING.DATASETS names %s, not in DATASETS.TRAIN %s: no canvases are tiled from %s",
                stray,
                tuple(names),
                "them" if len(stray) > 1 else "it",
            )
    m = cfg.MODEL
    if not m.FOSS.TEACHER_WEIGHTS:  # (a teacher gives ages to faces without)
        for name, lst in zip(names, lists):
            faces = [a for d in lst for a in d.get("annotations", [])]
            if any(_known(a.get("age_group")) for a in faces) and not any(_known(a.get("age")) for a in faces):
                logger.warning(
                    "%s: its faces carry age groups but no ages: training learns ages from 'age' (years), the "
                    "groups are read by the evaluator only",
                    name,
                )
    last = m.AGE_HEAD.NUM_AGE_CLASSES - 1
    for name, lst in zip(names, lists):
        old = [a["age"] for d in lst for a in d.get("annotations", []) if _known(a.get("age")) and a["age"] > last]
        if old:
            logger.warning(
                "%s: %d faces are older than the age network's last class (%d years; ages %g-%g): they train "
                "without an age (the paper trains on ages 0-%d)",
                name,
                len(old),
                last,
                min(old),
                max(old),
                last,
            )
    learns_unlabelled = m.FOSS.TEACHER_WEIGHTS or m.AGE_HEAD.LAMBDA_FLIP > 0
    if m.FOSS.FREEZE_DETECTOR and not m.FOSS.DETECTOR_ONLY and not learns_unlabelled:
        labelled = any(
            _known(a.get("age")) or _known(a.get("gender"))
            for lst in lists
            for d in lst
            for a in d.get("annotations", [])
        )
        if not labelled:
            raise DatasetError(
                f"DATASETS.TRAIN {tuple(names)} holds no face with an age or a gender and the detector is frozen "
                "(MODEL.FOSS.FREEZE_DETECTOR): nothing would train. Add an age-labelled dataset, or train the "
                "detector (MODEL.FOSS.FREEZE_DETECTOR False)"
            )


def build_foss_train_loader(cfg, mapper=None):
    names = list(cfg.DATASETS.TRAIN)
    lists = load_train_datasets(names)
    check_train_config(cfg, lists)
    sizes = [len(x) for x in lists]
    weights = list(cfg.DATALOADER.DATASET_WEIGHTS) or None
    image_weights = None
    balance = float(cfg.DATALOADER.AGE_BALANCE)
    if balance > 0:
        image_weights = [age_balance_weights(lst, balance) for lst in lists]
        for name, lst, w in zip(names, lists, image_weights):
            logger.info("Age balance %.2f on %s: share of draws per age band %s", balance, name, band_shares(lst, w))
    sampler = DatasetWeightedTrainingSampler(
        sizes, weights, seed=cfg.SEED if cfg.SEED >= 0 else None, image_weights=image_weights
    )
    logger.info(
        "Training on %s with sampling probabilities %s (epoch = %d images)",
        dict(zip(names, sizes)),
        [round(float(p), 3) for p in sampler.dataset_probs],
        sampler.epoch_length,
    )
    if mapper is None:
        pools = {n: lst for n, lst in zip(names, lists) if n in set(cfg.INPUT.TILING.DATASETS)}
        cache = None
        if cfg.INPUT.CACHE_DECODED:
            cache = DecodedImageCache.build([d for lst in lists for d in lst], cfg.INPUT.FORMAT)
        # age balance also for the extra tiles of a canvas, which the sampler does not pick
        pool_weights = {n: w for n, w in zip(names, image_weights)} if image_weights is not None else None
        mapper = FOSSDatasetMapper(cfg, True, pools=pools, read_image=cache, pool_weights=pool_weights)
    dataset = RetryingMapDataset([d for lst in lists for d in lst], mapper, seed=cfg.SEED)
    return build_detection_train_loader(
        dataset=dataset,
        mapper=None,  # mapped above
        sampler=sampler,
        total_batch_size=cfg.SOLVER.IMS_PER_BATCH,
        aspect_ratio_grouping=False,
        num_workers=cfg.DATALOADER.NUM_WORKERS,
    )
