"""MLflow pyfunc model (models-from-code): a thin wrapper over the saved engage pipeline.

Training logs this file with ``mlflow.pyfunc.log_model(python_model=<this file>, artifacts=
{"engage_model": <models/<version> folder>})``. At load time the folder is verified (manifest,
library versions) before anything is unpickled.

Input shape for REST (``/invocations``) and ``pyfunc.predict``: one row per post, each carrying
its influencer's profile columns (``influencer``, ``followers`` and optional ``following``,
``posts_count``, ``category``, ``platform``, ``country``, ``verified``, ``as_of``) and the post
columns of the data contract (``post_id``, ``posted_at``, ``likes``, ``comments``, optional
``shares``, ``saves``, ``views``, ``media_type``, ``is_sponsored``, ``hashtags``). A candidate
with no posts is one row with the post columns left empty. The answer has one row per
influencer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel

PROFILE_COLUMNS = ("influencer", "followers", "following", "posts_count", "category", "platform", "country", "verified", "as_of")


def split_rows(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """One-row-per-post input -> (profiles, posts) tables in the data contract."""
    profile_cols = [c for c in PROFILE_COLUMNS if c in frame]
    profiles = frame[profile_cols].drop_duplicates().reset_index(drop=True)
    if "post_id" not in frame:
        return profiles, None
    post_id = frame["post_id"]
    has_post = post_id.notna() & (post_id.astype(str).str.strip() != "")
    post_cols = ["influencer"] + [c for c in frame.columns if c not in PROFILE_COLUMNS]
    return profiles, frame.loc[has_post, post_cols].reset_index(drop=True)


class EngagementPyfunc(PythonModel):
    """Loads the verified engage artifact and answers with one prediction row per influencer."""

    def load_context(self, context: Any) -> None:
        from serving.predictor import load_model

        self.predictor = load_model(Path(context.artifacts["engage_model"]))

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        profiles, posts = split_rows(pd.DataFrame(model_input))
        return self.predictor.predict_for_rest(profiles, posts)


set_model(EngagementPyfunc())
