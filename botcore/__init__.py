"""Jupyter-native crypto trading: research notebooks to a live AI-driven trading service

Modules:

- `botcore.tracking`: Every training, evaluation, tuning and sweep run logged to MLflow by run id; a tracking store that fails never fails the run."""

__version__ = "0.1.0"
