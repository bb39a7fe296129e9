from .age_evaluator import (
    FaceAgeEvaluator,
    age_to_group,
    build_foss_evaluator,
    format_table,
    match_faces,
    summarize_rows,
)

__all__ = ["FaceAgeEvaluator", "age_to_group", "build_foss_evaluator", "format_table", "match_faces", "summarize_rows"]
