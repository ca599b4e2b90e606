"""rnn: train a recurrent next-word predictor in NumPy and use it from the shell or from Python.

    import rnncli
    m = rnncli.load("checkpoints/default")
    m.predict("sentindo-se")
    run = rnncli.train("configs/default.yaml", overrides={"train.epochs": 3})

``load``, ``train`` and ``Model`` come from ``rnncli.api`` and the result types from
``rnncli.results``; they are imported on first use, so ``import rnncli`` stays light (no NumPy,
click or yaml until a model is loaded).
"""

__version__ = "0.1.0"

_API = {"load", "train", "Model"}
_RESULTS = {
    "Prediction",
    "Completion",
    "Completions",
    "Generation",
    "Beam",
    "Fill",
    "Fills",
    "Score",
    "WordScore",
    "Evaluation",
    "Figures",
    "FillAccuracy",
    "Keystrokes",
    "TrainResult",
}
__all__ = sorted(_API | _RESULTS | {"__version__"})


def __getattr__(name: str):
    if name in _API:
        from . import api

        return getattr(api, name)
    if name in _RESULTS:
        from . import results

        return getattr(results, name)
    raise AttributeError(f"module 'rnncli' has no attribute {name!r}")
