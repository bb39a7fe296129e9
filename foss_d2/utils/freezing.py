"""Parts of a model kept fixed in training: MODEL.FOSS.FREEZE_DETECTOR, MODEL.DLA.FREEZE_AGE_FEATURE
and MODEL.AGE_HEAD.FROZEN_PARTS all mean the same thing, so they share this one rule."""

from typing import Iterable

from torch import nn


class FrozenParts:
    """Mixin for an ``nn.Module``: the modules given to ``freeze_parts`` get no gradient and stay in
    eval mode whatever ``train()`` is called with. Fixed also means fixed BatchNorm statistics (and
    no dropout), or their answers would drift while nothing is learnt."""

    frozen_parts = ()

    def freeze_parts(self, modules: Iterable[nn.Module]):
        self.frozen_parts = list(modules)
        for module in self.frozen_parts:
            module.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        for module in self.frozen_parts:
            module.eval()
        return self
