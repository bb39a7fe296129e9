from .build import build_foss_optimizer, cosine_schedule

__all__ = ["build_foss_optimizer", "cosine_schedule"]
