"""Generator splits, mGANprior, PmSFC (self-expressive layer, spectral clustering, subspace
inversion) and the subspace-swap application, on tiny networks and real faces."""

from __future__ import annotations

import json

import pytest
import torch

from invgan.applications.subspace_swap import swap_subspaces
from invgan.cli.apply import apply
from invgan.evaluation.pipeline import evaluate
from invgan.inversion.feature_composition import ChannelWeightedSum, SubspaceComposition
from invgan.inversion.multi_code import MultiCodeInversion
from invgan.inversion.pmsfc import PmSFCInversion, cached_subspaces
from invgan.inversion.self_expressive import SelfExpressiveLayer, learn_self_expression
from invgan.inversion.spectral_clustering import spectral_clustering
from invgan.nn.biggan.generator import BigGANGenerator
from invgan.nn.dcgan import DCGANGenerator
from invgan.nn.frozen_generator import FrozenGenerator
from invgan.nn.mapping import MappingMLP
from invgan.nn.stylegan2.generator import StyleGAN2Generator
from tests.conftest import SHARED_DATA, compose_config

W_DIM = 16


def tiny_generators() -> dict[str, torch.nn.Module]:
    """One tiny 16-px generator per backbone, with random weights."""
    torch.manual_seed(0)
    return {
        "dcgan": DCGANGenerator(W_DIM, 16, 3, base_width=8, num_scales=2),
        "biggan": BigGANGenerator(
            W_DIM, 16, 3, base_width=8, width_multipliers=[2, 1], attention_resolution=8
        ),
        "stylegan2": StyleGAN2Generator(
            W_DIM, 16, 3, n_mlp=2, channel_base=256, channel_max=16, channel_multiplier=1
        ),
    }


def frozen(generator: torch.nn.Module) -> FrozenGenerator:
    """The generator frozen, with a standalone mapping unless it owns one."""
    mapping = None if hasattr(generator, "mapping") else MappingMLP(W_DIM, W_DIM, 32)
    result = FrozenGenerator(generator, mapping)
    result.estimate_latent_avg(256)
    return result


class FrozenModel:
    """The part of a model that multi-code inversion uses: its frozen generator."""

    def __init__(self, generator: FrozenGenerator) -> None:
        self.generator = generator

    def frozen_generator(self) -> FrozenGenerator:
        return self.generator


@pytest.mark.parametrize("backbone", ["dcgan", "biggan", "stylegan2"])
def test_split_generator_equals_the_whole_at_every_layer(backbone):
    generator = frozen(tiny_generators()[backbone])
    codes = generator.map(torch.randn(3, W_DIM))
    if generator.n_latent > 1:  # distinct styles per layer, so a wrong style index shows
        codes = codes[:, None] + 0.5 * torch.randn(3, generator.n_latent, W_DIM)
    whole = generator.synthesize(codes)
    expected_layers = {"dcgan": 3, "biggan": 3, "stylegan2": 2}[backbone]
    assert generator.split_layers == expected_layers
    for layer in range(1, generator.split_layers + 1):
        features = generator.features(codes, layer)
        assert torch.equal(generator.synthesize_from(features, codes, layer), whole)
    for bad in (0, generator.split_layers + 1):
        with pytest.raises(ValueError, match=rf"1\.\.{expected_layers}"):
            generator.features(codes, bad)


def test_stylegan2_split_state_is_the_features_and_the_image_so_far():
    generator = tiny_generators()["stylegan2"].eval()
    w = torch.randn(2, W_DIM)
    state = generator.head(w, 1)
    # By hand: the 4x4 block is conv1 on the constant, then to_rgb1.
    styles = w[:, None].expand(-1, generator.n_latent, -1)
    x = generator.conv1(generator.input(2), styles[:, 0], generator.noises.noise_0)
    assert torch.equal(state, torch.cat([x, generator.to_rgb1(x, styles[:, 1])], dim=1))


def test_one_code_with_unit_weights_is_single_code_generation():
    for backbone, generator in tiny_generators().items():
        generator = frozen(generator)
        model = FrozenModel(generator)
        for layer in range(1, generator.split_layers + 1):
            method = MultiCodeInversion(
                model, layer=layer, num_codes=1, space="w", lpips_weight=0, steps=1
            )
            w = generator.map(torch.randn(2, W_DIM))
            codes = method.initial_codes(2)._replace(
                latents=w[:, None],
                weights=torch.ones(2, 1, method.channels),
                tail=generator.expand_to_codes(w).clone(),
            )
            expected = generator.synthesize(w)
            assert torch.allclose(method.synthesize(codes), expected, atol=1e-6), backbone
            # Packed codes round-trip: decode(pack(codes)) is the same image.
            assert torch.allclose(method.decode(method.pack(codes)), expected, atol=1e-6)
    with pytest.raises(ValueError, match="packed multi-codes"):
        method.decode(torch.zeros(2, 3))


def test_channel_weighted_sum_by_hand():
    features = torch.arange(2 * 3 * 2 * 1 * 1, dtype=torch.float32).reshape(2, 3, 2, 1, 1)
    weights = torch.tensor([[[1.0, 0.0], [2.0, 1.0], [0.0, -1.0]]]).expand(2, -1, -1)
    composed = ChannelWeightedSum().compose(features, weights)
    # Image 0: features rows (0, 1), (2, 3), (4, 5) -> channel 0: 0 + 4 + 0, channel 1: 0 + 3 - 5.
    assert composed[0].flatten().tolist() == [4.0, -2.0]


def test_subspace_composition_is_equation_7_and_8_by_hand():
    labels = torch.tensor([1, 0, 1])
    composition = SubspaceComposition(labels, codes_per_subspace=2)
    features = torch.randn(1, 4, 3, 2, 2)
    weights = torch.randn(1, 4, 3)
    composed = composition.compose(features, weights)
    gates = torch.tanh(weights[0])
    for channel, subspace in enumerate(labels.tolist()):
        codes = [2 * subspace, 2 * subspace + 1]  # z^r_1, z^r_2
        numerator = sum(features[0, k, channel] * gates[k, channel] for k in codes)
        expected = numerator / gates[codes, channel].sum()
        assert torch.allclose(composed[0, channel], expected, atol=1e-5)


def test_self_expressive_layer_has_a_zero_diagonal_whatever_its_weights():
    layer = SelfExpressiveLayer(5)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(5, 5))
    assert torch.equal(layer.coefficients.diagonal(), torch.zeros(5))
    features = torch.randn(2, 5, 3, 3)
    expected = torch.einsum("nchw,cd->ndhw", features, layer.weight * (1 - torch.eye(5)))
    assert torch.allclose(layer(features), expected)


def test_learned_self_expression_on_a_generator():
    generator = frozen(tiny_generators()["stylegan2"])
    coefficients = learn_self_expression(generator, 1, steps=30, batch_size=4)
    assert torch.equal(coefficients.diagonal(), torch.zeros(coefficients.shape[0]))
    # It expresses the features better than S = 0 does (which gives their mean square).
    codes = generator.map(torch.randn(8, W_DIM))
    features = generator.features(codes, 1)
    expressed = torch.einsum("nchw,cd->ndhw", features, coefficients)
    assert (features - expressed).square().mean() < 0.9 * features.square().mean()
    labels = spectral_clustering((coefficients.abs() + coefficients.abs().T) / 2, 3)
    assert sorted(labels.unique().tolist()) == [0, 1, 2] and labels.numel() == 19


def test_spectral_clustering_recovers_a_planted_block_diagonal_affinity():
    rng = torch.Generator().manual_seed(3)
    sizes = [7, 3, 12, 5]
    truth = torch.cat([torch.full((size,), block) for block, size in enumerate(sizes)])
    nodes = truth.numel()
    same = truth[:, None] == truth[None, :]
    affinity = torch.where(
        same, 0.5 + 0.5 * torch.rand(nodes, nodes, generator=rng), 0.05 * torch.rand(nodes, nodes)
    )
    order = torch.randperm(nodes, generator=rng)  # channels of a block need not be adjacent
    affinity, truth = affinity[order][:, order], truth[order]
    labels = spectral_clustering((affinity + affinity.T) / 2, len(sizes), seed=1)
    # The same partition: two nodes share a label exactly when they share a block.
    assert torch.equal(labels[:, None] == labels[None, :], truth[:, None] == truth[None, :])
    with pytest.raises(ValueError, match="num_subspaces"):
        spectral_clustering(affinity, nodes + 1)


def test_spectral_clustering_never_leaves_a_group_empty():
    # A disconnected node and many identical ones: k-means alone could empty a cluster.
    affinity = torch.ones(10, 10)
    affinity[0, :] = affinity[:, 0] = 0
    for count in range(1, 11):
        labels = spectral_clustering(affinity, count, restarts=2)
        assert torch.bincount(labels, minlength=count).min() >= 1 and labels.max() == count - 1


def test_subspaces_are_cached_per_generator_and_layer(tmp_path):
    generator = frozen(tiny_generators()["dcgan"])
    discovery = {"steps": 5, "batch_size": 2}
    first = cached_subspaces(generator, 2, 3, discovery, tmp_path)
    assert len(list(tmp_path.glob("subspaces_layer2_r3_*.pt"))) == 1
    again = cached_subspaces(generator, 2, 3, discovery, tmp_path)
    assert torch.equal(first.labels, again.labels)
    assert torch.equal(first.coefficients, again.coefficients)
    cached_subspaces(generator, 1, 3, discovery, tmp_path)  # another layer: another file
    assert len(list(tmp_path.glob("subspaces_*.pt"))) == 2


def test_invalid_split_layer_is_named_with_its_range():
    model = FrozenModel(frozen(tiny_generators()["biggan"]))
    with pytest.raises(ValueError, match=r"split layer 9 .* 1\.\.3"):
        MultiCodeInversion(model, layer=9, lpips_weight=0)


def test_subspace_swap_exchanges_one_subspace_of_the_composed_features():
    model = FrozenModel(frozen(tiny_generators()["dcgan"]))
    method = PmSFCInversion(
        model,
        num_subspaces=3,
        num_codes=2,
        discovery={"steps": 3, "batch_size": 2},
        layer=2,
        steps=2,
        lpips_weight=0,
    )
    images = torch.rand(2, 3, 16, 16) * 2 - 1
    result = swap_subspaces(method, images)
    assert result.swaps.shape == (1, 3, 2, 3, 16, 16)
    # By hand: a's composed features with subspace 1's channels taken from b, through G2.
    features = method.composed_features(method.unpack(result.packed_codes))
    mixed = features[0].clone()
    channels = method.composition.labels == 1
    mixed[channels] = features[1][channels]
    tail = method.unpack(result.packed_codes).tail[:1]
    by_hand = method.generator.synthesize_from(mixed[None], tail, 2)
    assert torch.allclose(result.swaps[0, 1, 0], by_hand[0], atol=1e-6)
    with pytest.raises(ValueError, match="even number"):
        swap_subspaces(method, images[:1])


# ------------------------------------------------------------------ real faces

# Pixel loss only: LPIPS would cost most of each step; the comparisons hold for the MSE fitted.
FAST = ["inversion.lpips_weight=0", "device=cpu"]
STEPS = 40


@pytest.fixture(scope="module")
def face_model(face_generator_checkpoint, tmp_path_factory):
    """The 16-px face InvGAN as evaluate.py builds it, and six real test faces."""
    from invgan.checkpoints.format import load_checkpoint
    from invgan.checkpoints.run_config import restore_run_config
    from invgan.evaluation.loading import build_model
    from invgan.utils.images import to_signed_range
    from invgan.utils.instantiate import instantiate_datamodule

    folder = tmp_path_factory.mktemp("multi_code_eval")
    cfg = compose_config(
        "evaluate", [f"ckpt_path={face_generator_checkpoint}", "device=cpu"], folder
    )
    checkpoint = load_checkpoint(face_generator_checkpoint)
    run_cfg = restore_run_config(checkpoint, cfg)
    datamodule = instantiate_datamodule(run_cfg.data)
    datamodule.setup()
    faces = to_signed_range(torch.stack([datamodule.test_dataset[i] for i in range(6)]))
    return build_model(run_cfg, checkpoint, cfg), faces, folder


def inversion_method(face_model, name: str, *overrides: str):
    """conf/inversion/<name>.yaml with overrides, instantiated as the Evaluator does."""
    import hydra

    model, _, folder = face_model
    cfg = compose_config("evaluate", [f"inversion={name}", *FAST, *overrides], folder)
    return hydra.utils.instantiate(cfg.inversion, model=model)


def mse(method, faces: torch.Tensor) -> float:
    return float((method.reconstruct(faces) - faces).square().mean())


@pytest.fixture(scope="module")
def mganprior_error(face_model) -> float:
    """mGANprior's error on the faces: 8 codes at layer 2, STEPS steps."""
    method = inversion_method(
        face_model, "mganprior", f"inversion.steps={STEPS}", "inversion.num_codes=8"
    )
    return mse(method, face_model[1])


def test_mganprior_beats_single_code_optimisation_at_equal_steps(face_model, mganprior_error):
    single = inversion_method(
        face_model, "optimization", f"inversion.steps={STEPS}", "inversion.space=w"
    )
    assert mganprior_error < 0.8 * mse(single, face_model[1])


def pmsfc(face_model, subspaces: int, codes_per_subspace: int):
    """PmSFC at STEPS steps with R subspaces of K codes (discovery shortened)."""
    return inversion_method(
        face_model,
        "pmsfc",
        f"inversion.steps={STEPS}",
        f"inversion.num_subspaces={subspaces}",
        f"inversion.num_codes={codes_per_subspace}",
        "inversion.discovery.steps=40",
    )


def test_pmsfc_with_mganpriors_codes_in_every_subspace_reconstructs_better(
    face_model, mganprior_error
):
    # The paper's setting: K codes per subspace, here mGANprior's 8, at equal steps.
    assert mse(pmsfc(face_model, 4, 8), face_model[1]) <= mganprior_error


@pytest.mark.xfail(
    strict=True,
    reason="measured: with mGANprior's 8 codes shared by 2 subspaces PmSFC fits worse (MSE "
    "0.108 against 0.074 at 40 steps, 0.054 against 0.035 at 150); mGANprior's free channel "
    "weights can express Eq. 7's normalised ones, and fewer codes per subspace cost more",
)
def test_pmsfc_with_as_many_codes_in_all_reconstructs_at_least_as_well(
    face_model, mganprior_error
):
    method = pmsfc(face_model, 2, 4)
    assert method.total_codes == 8
    assert mse(method, face_model[1]) <= mganprior_error


@pytest.mark.parametrize("name", ["mganprior", "pmsfc"])
def test_evaluate_reports_reconstruction_metrics(face_generator_checkpoint, tmp_path, name):
    cfg = compose_config(
        "evaluate",
        [
            f"ckpt_path={face_generator_checkpoint}",
            f"inversion={name}",
            *FAST,
            "inversion.steps=5",
            "inversion.num_codes=2",
            "inversion.discovery.steps=5" if name == "pmsfc" else "inversion.layer=1",
            "metrics.fid.enabled=false",
            "metrics.runtime.enabled=false",
            "metrics.lpips.nets=[alex]",
            "metrics.reconstruction.max_images=4",
        ],
        tmp_path / "eval",
    )
    metrics = evaluate(cfg)["metrics"]
    assert metrics["test/mae"]["count"] == 4 and 0 < metrics["test/mae"]["value"] < 2
    assert 0 < metrics["test/lpips_alex"]["value"] < 1
    written = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert written["metrics"]["test/mae"]["value"] == metrics["test/mae"]["value"]


def test_apply_subspace_swap_on_real_faces(face_generator_checkpoint, tmp_path):
    faces = sorted((SHARED_DATA / "faces").iterdir())[:2]
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for face in faces:
        (inputs / face.name).symlink_to(face)
    out = tmp_path / "apply"
    cfg = compose_config(
        "apply",
        [
            "application=subspace_swap",
            "inversion=pmsfc",
            f"ckpt_path={face_generator_checkpoint}",
            f"inputs={inputs}",
            *FAST,
            "inversion.steps=5",
            "inversion.num_subspaces=3",
            "inversion.num_codes=2",
            "inversion.discovery.steps=5",
        ],
        out,
    )
    paths = apply(cfg)
    assert [p.name for p in paths] == ["subspace_swap.png", "subspace_swap_codes.pt"]
    saved = torch.load(out / "subspace_swap_codes.pt")
    assert saved["packed_codes"].shape[0] == 2 and saved["labels"].max() == 2
    # Six 16-px columns and three rows (one per subspace), 2 px padding.
    from PIL import Image

    assert Image.open(out / "subspace_swap.png").size == (6 * 18 + 2, 3 * 18 + 2)
    cfg.inversion = compose_config("apply", ["inversion=mganprior", *FAST], out).inversion
    with pytest.raises(ValueError, match="inversion=pmsfc"):
        apply(cfg)
