"""e4e's losses: pSp's weights plus its delta regulariser, latent discriminator and R1, and
the progressive schedule of offsets that decides which terms are on (`model.<name>`),
validated on construction; the defaults are conf/model/e4e.yaml's."""

from __future__ import annotations

from dataclasses import dataclass

from invgan.modules.psp_loss_config import PSPLossConfig


@dataclass(frozen=True)
class E4ELossConfig(PSPLossConfig):
    """pSp's loss weights and e4e's own terms and schedule (see `invgan.modules.e4e`)."""

    delta_weight: float = 2e-4  # e4e's delta_norm_lambda
    w_discriminator_weight: float = 0.1  # e4e's w_discriminator_lambda
    r1_gamma: float = 10.0  # R1 on real codes (e4e's --r1)
    r1_interval: int = 16  # lazily, every this many iterations (e4e's --d_reg_every)
    # The iteration at which offset 1 joins (null: every offset from the start, as in e4e's
    # code, and no delta regulariser); one more every progressive_interval iterations.
    progressive_start: int | None = 20000
    progressive_interval: int = 2000
    # Codes from past iterations the latent discriminator also sees (e4e's --w_pool_size,
    # with --use_w_pool as its training commands set it); 0: only this iteration's.
    w_pool_size: int = 50

    def check(self) -> None:
        """pSp's rules, and a first offset that joins at an iteration >= 0 (or null)."""
        super().check()
        start = self.progressive_start
        if start is not None and start < 0:
            self.refuse(
                f"{self.key('progressive_start')}={start!r}: must be an integer >= 0 (the "
                "iteration at which the first offset joins; e4e uses 20000) or null (every "
                "offset from the start)"
            )
