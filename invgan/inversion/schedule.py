"""Learning-rate ramp of StyleGAN2's projector (Karras et al. 2020, `projector.py`)."""

from __future__ import annotations

import math

from invgan.utils.config_checks import check_count


def ramped_learning_rate(
    step: int, steps: int, base_lr: float, rampup: float = 0.05, rampdown: float = 0.25
) -> float:
    """Learning rate at `step` of `steps`: linear warm-up over the first `rampup` fraction of
    the steps, cosine ramp-down to zero over the last `rampdown` fraction, `base_lr` between.

    The warm-up keeps Adam's first, poorly normalised updates small; the ramp-down lets the
    code settle instead of oscillating at the final learning rate. Fractions of 0 disable a
    ramp. Like the projector, step 0 of a warm-up has learning rate 0.
    """
    check_count("steps", steps)
    if not (0.0 <= rampup <= 1.0 and 0.0 <= rampdown <= 1.0):
        raise ValueError(f"ramp fractions must be in [0, 1], got {rampup} and {rampdown}")
    t = step / steps
    down = min(1.0, (1.0 - t) / rampdown) if rampdown > 0 else 1.0
    up = min(1.0, t / rampup) if rampup > 0 else 1.0
    return base_lr * (0.5 - 0.5 * math.cos(math.pi * down)) * up
