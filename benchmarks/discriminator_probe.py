"""How far a run's samples are from real images, seen by a fresh discriminator: trains a newly
initialised copy of the run's discriminator (same architecture and config) to tell training
images from samples of the frozen checkpoint, and prints its loss and accuracy on held-out
validation images and new samples as it learns.

A discriminator that stays at chance during training (loss 2 ln 2 = 1.386) is either facing
samples it cannot tell from real ones, or an equilibrium in which the generator undoes each of
its steps; a fresh one that learns to separate the frozen samples shows the second.

Usage: python benchmarks/discriminator_probe.py <checkpoint> [steps] [lr] [ema|live]
(with INVGAN_DATA_DIR pointing at the run's data, as for evaluate.py).
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import hydra
import torch
from hydra import compose, initialize_config_dir

from invgan.checkpoints.format import load_checkpoint
from invgan.checkpoints.run_config import restore_run_config
from invgan.evaluation.loading import build_model, resolve_device
from invgan.losses.adversarial import discriminator_loss
from invgan.utils.images import batch_images, to_signed_range
from invgan.utils.instantiate import instantiate_datamodule

CONFIG_DIR = Path(__file__).resolve().parents[1] / "conf"
REPORT_EVERY = 250
HELD_OUT_BATCHES = 4


def _images(batches, device: torch.device):
    """Images in [-1, 1] on `device` from a loader's batches, forever."""
    for batch in itertools.cycle(batches):
        yield to_signed_range(batch_images(batch)).to(device)


def main(checkpoint_path: str, steps: int, lr: float, which: str) -> None:
    """Train the fresh discriminator for `steps` batches and print held-out loss and accuracy."""
    torch.manual_seed(0)
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("evaluate", [f"ckpt_path={checkpoint_path}"])
    device = resolve_device(cfg.device)
    # The run's config, not only its weights: the probe is built from its discriminator config.
    checkpoint = load_checkpoint(checkpoint_path)
    run_cfg = restore_run_config(checkpoint, cfg)
    model = build_model(run_cfg, checkpoint, cfg, checkpoint_path).to(device)
    datamodule = instantiate_datamodule(run_cfg.data)
    datamodule.setup("fit")
    probe = hydra.utils.instantiate(run_cfg.model.discriminator).to(device)
    optimizer = hydra.utils.instantiate(run_cfg.model.optimizer_d)(
        params=probe.parameters(), lr=lr
    )
    train_images = _images(datamodule.train_dataloader(), device)
    held_out = list(
        itertools.islice(_images(datamodule.val_dataloader(), device), HELD_OUT_BATCHES)
    )
    held_out_samples = model.sample(256, which, torch.Generator().manual_seed(1))
    print(f"fresh {type(probe).__name__}, lr {lr}, {which} samples; chance loss 1.386")
    for step in range(steps + 1):
        if step % REPORT_EVERY == 0:
            with torch.no_grad():
                real_logits = torch.cat([probe(images).logits for images in held_out])
                fake_logits = probe(held_out_samples).logits
            accuracy = ((real_logits > 0).float().mean() + (fake_logits < 0).float().mean()) / 2
            loss = discriminator_loss(real_logits, fake_logits)
            print(f"step {step}: held-out loss {loss:.3f}, accuracy {accuracy:.3f}", flush=True)
        if step == steps:
            break
        real = next(train_images)
        with torch.no_grad():
            fake = model.sample(real.shape[0], which)
        loss = discriminator_loss(probe(real).logits, probe(fake).logits)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


if __name__ == "__main__":
    args = sys.argv[1:]
    main(
        args[0],
        int(args[1]) if len(args) > 1 else 1500,
        float(args[2]) if len(args) > 2 else 5e-4,
        args[3] if len(args) > 3 else "ema",
    )
