from .build import build_foss_optimizer, cosine_schedule, distill_epochs

__all__ = ["build_foss_optimizer", "cosine_schedule", "distill_epochs"]
