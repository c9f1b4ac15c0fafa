"""`python train.py [experiment=...] [overrides...]`: see invgan/cli/train.py."""

from invgan.cli.train import main
from invgan.cli.user_errors import run_command

if __name__ == "__main__":
    run_command(main, "train.py")
