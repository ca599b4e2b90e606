"""rnn: train a recurrent next-word predictor in NumPy and use it from the shell."""

__version__ = "0.1.0"
