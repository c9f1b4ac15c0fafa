"""`python -m invgan.compare <run dirs or metrics.json> -o <dir>`: see invgan/cli/compare.py."""

from invgan.cli.compare import main
from invgan.cli.user_errors import run_command

if __name__ == "__main__":
    run_command(main, "python -m invgan.compare")
