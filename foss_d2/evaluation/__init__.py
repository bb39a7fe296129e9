from .age_evaluator import FaceAgeEvaluator, build_foss_evaluator, match_faces

__all__ = ["FaceAgeEvaluator", "build_foss_evaluator", "match_faces"]
