"""Training loader over several datasets with size-weighted sampling and tiling (paper 3.3, 4.2)."""

import logging

from detectron2.data import DatasetCatalog, build_detection_train_loader

from .cache import DecodedImageCache
from .dataset_mapper import FOSSDatasetMapper
from .samplers import DatasetWeightedTrainingSampler

logger = logging.getLogger(__name__)


def load_train_datasets(names):
    """Each dataset's records, tagged with ``dataset_name`` (the tiling mapper keys on it)."""
    lists = []
    for name in names:
        dicts = DatasetCatalog.get(name)
        if not dicts:
            raise ValueError(f"training dataset {name!r} is empty")
        for d in dicts:
            d["dataset_name"] = name
        lists.append(dicts)
    return lists


def build_foss_train_loader(cfg, mapper=None):
    names = list(cfg.DATASETS.TRAIN)
    lists = load_train_datasets(names)
    sizes = [len(x) for x in lists]
    weights = list(cfg.DATALOADER.DATASET_WEIGHTS) or None
    sampler = DatasetWeightedTrainingSampler(sizes, weights, seed=cfg.SEED if cfg.SEED >= 0 else None)
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
        mapper = FOSSDatasetMapper(cfg, True, pools=pools, read_image=cache)
    dataset = [d for lst in lists for d in lst]
    return build_detection_train_loader(
        dataset=dataset,
        mapper=mapper,
        sampler=sampler,
        total_batch_size=cfg.SOLVER.IMS_PER_BATCH,
        aspect_ratio_grouping=False,
        num_workers=cfg.DATALOADER.NUM_WORKERS,
    )
