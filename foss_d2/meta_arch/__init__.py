from .foss import FOSS
from .test_time_augmentation import FOSSWithTTA

__all__ = ["FOSS", "FOSSWithTTA"]
