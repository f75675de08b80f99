"""Serving: load a verified model and score raw candidate tables (Python API, CLI, REST).

``serving`` imports ``features`` but never ``training``: it loads what training saved.
``Predictor`` and ``load_model`` are imported on first use, so that the light modules of this
package (:mod:`serving.server`'s limits, which every ``engage`` command's parser shows) do not
load the model libraries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from serving.predictor import Predictor, load_model

__all__ = ["Predictor", "load_model"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from serving import predictor

        return getattr(predictor, name)
    raise AttributeError(f"module 'serving' has no attribute {name!r}")
