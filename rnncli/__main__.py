"""`python -m rnncli` works like `rnn`."""

from .cli import main

main(prog_name="rnn")
