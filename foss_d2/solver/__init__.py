from .build import build_foss_optimizer

__all__ = ["build_foss_optimizer"]
