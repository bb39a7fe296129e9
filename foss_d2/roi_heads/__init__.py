from .age_head import (
    TResNetAgeHead,
    TResNetAgeNet,
    age_gender_losses,
    crop_faces,
    expand_boxes_with_margins,
    mean_variance_terms,
)

__all__ = [
    "TResNetAgeHead",
    "TResNetAgeNet",
    "age_gender_losses",
    "crop_faces",
    "expand_boxes_with_margins",
    "mean_variance_terms",
]
