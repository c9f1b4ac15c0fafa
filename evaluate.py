"""`python evaluate.py ckpt_path=<run>/checkpoints/last.ckpt`: see invgan/cli/evaluate.py."""

from invgan.cli.evaluate import main
from invgan.cli.user_errors import run_command

if __name__ == "__main__":
    run_command(main, "evaluate.py")
