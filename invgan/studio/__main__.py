"""`python -m invgan.studio ckpt_path=<run>/checkpoints/last.ckpt`: the editing studio, a
local web page (conf/studio.yaml)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig

from invgan.cli.config_dir import CONFIG_DIR

log = logging.getLogger(__name__)


def run(cfg: DictConfig, block: bool = True) -> str:
    """Load the model, build the page and serve it; returns the page's URL (with `block`,
    only once the server stops)."""
    from invgan.studio.studio import build_studio
    from invgan.studio.ui import build_page, example_choices, serve

    start = time.perf_counter()
    # Gradio checks its own server with httpx at start; those requests are not news.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    workdir = Path(cfg.paths.output_dir)
    studio = build_studio(cfg, workdir)
    for name, entry in studio.methods.items():
        if entry.problem is not None:
            log.warning("inversion method %s is unavailable: %s", name, entry.problem)
    examples = example_choices(cfg.examples.folder, int(cfg.examples.count))
    blocks = build_page(studio, examples, cfg.edit_method, float(cfg.directions.max_strength))
    server = cfg.server
    url = serve(
        blocks,
        server.host,
        server.port,
        int(server.concurrency),
        int(server.queue_size),
        studio.upload.max_bytes,
        workdir,
        block=False,
    )
    # Scripts and tests wait for this line: the page answers from now on.
    print(f"studio ready at {url} after {time.perf_counter() - start:.1f} s", flush=True)
    if block:
        blocks.block_thread()
    return url


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="studio.yaml")
def main(cfg: DictConfig) -> None:
    """Hydra entry point."""
    run(cfg)


if __name__ == "__main__":
    main()
