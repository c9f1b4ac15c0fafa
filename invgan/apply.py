"""`python -m invgan.apply application=<name> ...`: see invgan/cli/apply.py."""

from invgan.cli.apply import main
from invgan.cli.user_errors import run_command

if __name__ == "__main__":
    run_command(main, "python -m invgan.apply")
