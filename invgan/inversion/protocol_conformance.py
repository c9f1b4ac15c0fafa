"""The project's models and inversion methods, checked by mypy (CI) against the protocols of
`invgan.inversion.protocols`: a class that drifts from them (a renamed member, a changed
signature) fails type checking here, naming the class and the member.

Nothing here runs: the imports are for the type checker only, so importing this module
loads no recipe.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from invgan.inversion.encoder import EncoderInversion
    from invgan.inversion.multi_code import MultiCodeInversion
    from invgan.inversion.optimization import LatentOptimization
    from invgan.inversion.pmsfc import PmSFCInversion
    from invgan.inversion.protocols import (
        GenerativeModel,
        InversionMethod,
        InvertibleModel,
        IterativeEncoder,
        MaskedInversion,
        PriorInversion,
        SubspaceInversion,
    )
    from invgan.inversion.pti import PivotalTuning
    from invgan.inversion.restyle import ReStyleInversion
    from invgan.modules.e4e import E4EModule
    from invgan.modules.indomain import InDomainEncoderModule
    from invgan.modules.invgan import InvGANModule
    from invgan.modules.psp import PSPModule
    from invgan.modules.restyle import ReStyleModule
    from invgan.nn.pretrained_generator import PretrainedGenerator


def models_satisfy_protocols(
    invgan: InvGANModule,
    psp: PSPModule,
    e4e: E4EModule,
    restyle: ReStyleModule,
    indomain: InDomainEncoderModule,
    pretrained: PretrainedGenerator,
) -> None:
    """Each model as the protocols it offers (a bare generator file has no encoder)."""
    invertible: list[InvertibleModel] = [invgan, psp, e4e, restyle, indomain]
    iterative: IterativeEncoder = restyle
    generative: list[GenerativeModel] = [*invertible, pretrained]
    del iterative, generative


def methods_satisfy_protocols(
    encoder: EncoderInversion,
    restyle: ReStyleInversion,
    optimization: LatentOptimization,
    multi_code: MultiCodeInversion,
    pmsfc: PmSFCInversion,
    pti: PivotalTuning,
) -> None:
    """Each inversion method as `InversionMethod`, and the optional abilities it offers."""
    methods: list[InversionMethod] = [encoder, restyle, optimization, multi_code, pmsfc, pti]
    masked: MaskedInversion = optimization
    prior: PriorInversion = optimization
    subspaces: SubspaceInversion = pmsfc
    del methods, masked, prior, subspaces
