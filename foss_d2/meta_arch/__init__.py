from .foss import FOSS

__all__ = ["FOSS"]
