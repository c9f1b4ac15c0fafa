"""Layer schedules in a composed config: a resolution a network's layers cannot produce is
refused by `invgan.nn.config_check.check_config`, naming the key to set (where the network's
`resolution` interpolation leads), the network and the arguments read; the generic value rules of
`invgan.utils.config_checks` know no network and accept the same config."""

from __future__ import annotations

import pytest

from invgan.nn.config_check import check_config
from invgan.utils.config_checks import ConfigValueError, config_problems
from tests.conftest import CPU_RUN, compose_config


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["data.resolution=30"],  # 30 = 7 * 2**2: no base size for num_scales=2
            "data.resolution=30: model.generator (DCGANGenerator) cannot use it with "
            "model.generator.num_scales=2: resolution 30 is not divisible by 2**num_scales = 4",
        ),
        (
            ["model=invgan_stylegan2", "data.resolution=48"],
            "data.resolution=48: model.discriminator (StyleGAN2Discriminator) cannot use it with "
            "model.discriminator.channel_base=16384, model.discriminator.channel_multiplier=2, "
            "model.discriminator.channel_max=512: StyleGAN2 resolution must be a power of two",
        ),
        (
            ["model=invgan_biggan", "model.generator.width_multipliers=[1,1,1]"],
            "data.resolution=16: model.generator (BigGANGenerator) cannot use it with "
            "model.generator.width_multipliers=[1, 1, 1]: model.generator.width_multipliers="
            "[1, 1, 1]: need 2 positive integers, one per block at this resolution",
        ),
    ],
)
def test_a_schedule_the_network_cannot_build_is_refused_naming_the_key(
    overrides, message, tmp_path
):
    cfg = compose_config("train", [*CPU_RUN, "data=synthetic", *overrides], tmp_path)
    assert config_problems(cfg) == []  # every value on its own is fine
    with pytest.raises(ConfigValueError) as error:
        check_config(cfg)
    assert message in str(error.value)
