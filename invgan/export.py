"""`python -m invgan.export ckpt_path=<checkpoint> [format=...]`: see invgan/cli/export.py."""

from invgan.cli.export import main
from invgan.cli.user_errors import run_command

if __name__ == "__main__":
    run_command(main, "python -m invgan.export")
