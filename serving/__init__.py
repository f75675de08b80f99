"""Serving: load a verified model and score raw candidate tables (Python API, CLI, REST).

``serving`` imports ``features`` but never ``training``: it loads what training saved.
"""

from serving.predictor import Predictor, load_model

__all__ = ["Predictor", "load_model"]
