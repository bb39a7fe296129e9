from .age_head import TResNetAgeHead
from .build import AGE_HEAD_REGISTRY, build_age_head
from .crops import crop_faces, expand_boxes_with_margins, sanitize_boxes
from .losses import age_gender_losses, mean_variance_terms
from .tresnet import TResNetAgeNet

__all__ = [
    "AGE_HEAD_REGISTRY",
    "build_age_head",
    "TResNetAgeHead",
    "TResNetAgeNet",
    "age_gender_losses",
    "crop_faces",
    "expand_boxes_with_margins",
    "mean_variance_terms",
    "sanitize_boxes",
]
