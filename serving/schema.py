"""The pyfunc model's contract: its code file, its artifact, and the REST input schema (one row
per post, each carrying its influencer's profile columns), with the one "tables to REST rows"
shape that requests, tests and the logged input example share.

Kept apart from :mod:`serving.pyfunc` (which registers a model when imported, as MLflow's
models-from-code needs) so that anything can import it without side effects: training logs its
model with :func:`package_model` (:func:`pyfunc_model` and :func:`input_example`, handed to
training by the ``engage`` command: training never imports serving), ``engage serve`` saves one
the same way (:mod:`serving.rest`).

Why an explicit schema rather than one inferred from an input example: MLflow enforces the
logged signature on every request. An inferred signature makes every example column required
(so a shortlist without ``following`` or a request of cold-start candidates without post
columns is refused) and silently drops every column the example lacked (``shares``, ``saves``,
``platform``, ``verified``, ``as_of``), which would make REST answers differ from
:meth:`serving.predictor.Predictor.predict` on the same rows. Here only the columns the data
contract requires of every candidate are required; the post columns are optional because a
candidate without posts has none.

Yes/no columns (``verified``, ``is_sponsored``) and times (``posted_at``, ``as_of``) accept any
type: the scoring server casts JSON to declared types with ``astype``, and ``astype(bool)`` turns
the text ``"false"`` into True, while a declared string would refuse JSON booleans and
timestamps. Undeclared, true/false, 1/0, yes/no text, ISO strings and timestamps all reach the
data contract's own parsers, which name the rows of any bad value. Counts accept any type too,
for the same reason: a declared double would be cast with ``astype(float)``, which reads JSON
true as 1 follower and the text "１２" as 12; undeclared, the contract reads them as it reads a
file (whole numbers, plain digits) and names the request rows of anything else. Declared as
doubles, they also made ``mlflow.pyfunc.load_model(...).predict(df)`` refuse a DataFrame of
integer counts ("Can not safely convert int64 to float64"); integers and floats both work now.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, DataType, Schema
from mlflow.types.schema import AnyType

from features.contract import PROFILE_OPTIONAL, PROFILE_REQUIRED
from features.registry import MODEL_ARTIFACT
from serving.predictor import PLAN_COLUMNS

# (column, type, required); order = the order a client is shown. None = any type (see above).
REST_COLUMNS: tuple[tuple[str, DataType | None, bool], ...] = (
    ("influencer", DataType.string, True),
    ("followers", None, True),
    ("following", None, False),
    ("posts_count", None, False),
    ("category", DataType.string, False),
    ("platform", DataType.string, False),
    ("country", DataType.string, False),
    ("verified", None, False),
    ("as_of", None, False),
    ("post_type", DataType.string, False),
    ("sponsored", None, False),
    ("target_engagements", None, False),
    ("post_id", DataType.string, False),
    ("posted_at", None, False),
    ("likes", None, False),
    ("comments", None, False),
    ("shares", None, False),
    ("saves", None, False),
    ("views", None, False),
    ("media_type", DataType.string, False),
    ("is_sponsored", None, False),
    ("hashtags", DataType.string, False),
    ("caption", DataType.string, False),
    ("image_description", DataType.string, False),
)

# A request row's profile part: the data contract's profile columns.
PROFILE_COLUMNS = (*PROFILE_REQUIRED, *PROFILE_OPTIONAL)
# PLAN_COLUMNS, the planned post per candidate: like the profile columns, repeated on every
# row of the influencer.
POST_COLUMNS = tuple(
    name for name, _, _ in REST_COLUMNS if name not in PROFILE_COLUMNS and name not in PLAN_COLUMNS
)


def input_schema() -> Schema:
    """The enforced input schema (see the module docstring for the choices)."""
    return Schema(
        [
            ColSpec(dtype if dtype is not None else AnyType(), name, required=required)
            for name, dtype, required in REST_COLUMNS
        ]
    )


def input_signature() -> ModelSignature:
    """Input-only signature: serving decides the output columns."""
    return ModelSignature(inputs=input_schema())


def pyfunc_code_path() -> Path:
    """The serving wrapper's file (models-from-code), found without importing it."""
    spec = importlib.util.find_spec("serving.pyfunc")
    if spec is None or spec.origin is None:
        raise RuntimeError("serving.pyfunc not found; is engage installed?")
    return Path(spec.origin)


def pyfunc_model(model_dir: str | Path) -> dict[str, Any]:
    """The arguments ``mlflow.pyfunc.log_model`` and ``save_model`` take for an engage model
    folder: the wrapper's code, the folder as :data:`MODEL_ARTIFACT` and the input signature."""
    return {
        "python_model": str(pyfunc_code_path()),
        "artifacts": {MODEL_ARTIFACT: str(model_dir)},
        "signature": input_signature(),
    }


def package_model(
    model_dir: str | Path, profiles: pd.DataFrame, posts: pd.DataFrame
) -> dict[str, Any]:
    """How training logs an engage model (a ``training.tracking.ModelPackager``): the arguments
    of ``mlflow.pyfunc.log_model``, :func:`pyfunc_model` for the folder and the
    :func:`input_example` of the validated ``profiles`` and ``posts``.

    The signature is the input schema only (serving decides the output columns, and MLflow
    enforces inputs), declared rather than inferred from the example: see the module docstring
    for what inference would refuse or drop.
    """
    return {**pyfunc_model(model_dir), "input_example": input_example(profiles, posts)}


def to_rest_rows(profiles: pd.DataFrame, posts: pd.DataFrame | None) -> pd.DataFrame:
    """Contract tables -> the REST input shape: one row per post with its profile columns.

    Profiles without posts become one row with empty post columns. Only columns of the schema
    are kept; values are left as they are (the server casts them to the schema's types).
    """
    profile_cols = [c for c in PROFILE_COLUMNS if c in profiles]
    left = profiles[profile_cols]
    if posts is None or len(posts.columns) == 0:
        return left.reset_index(drop=True)
    post_cols = [c for c in POST_COLUMNS if c in posts]
    rows = left.merge(posts[["influencer", *post_cols]], on="influencer", how="left", sort=False)
    return rows.reset_index(drop=True)


# Columns of the logged input example: the profile and post columns a typical shortlist has.
EXAMPLE_COLUMNS = (
    "influencer",
    "followers",
    "following",
    "posts_count",
    "category",
    "post_id",
    "posted_at",
    "likes",
    "comments",
    "media_type",
    "is_sponsored",
    "hashtags",
)


def input_example(
    profiles: pd.DataFrame, posts: pd.DataFrame, n_influencers: int = 3
) -> pd.DataFrame:
    """A small request in the REST input shape, logged with the model as MLflow's input example:
    the posts of the first ``n_influencers`` influencers with posts, in :data:`EXAMPLE_COLUMNS`.

    Counts are floats (an integer column with gaps must be) and times ISO text, as a JSON
    client would send them.
    """
    chosen = posts["influencer"].drop_duplicates().head(n_influencers)
    # Profiles in the order their first post comes, so rows follow the posts' order.
    chosen_profiles = chosen.to_frame().merge(profiles, on="influencer", how="left")
    rows = to_rest_rows(chosen_profiles, posts[posts["influencer"].isin(chosen)])
    rows = rows[[c for c in EXAMPLE_COLUMNS if c in rows]].copy()
    rows["posted_at"] = rows["posted_at"].astype(str)
    for col in ("followers", "following", "posts_count", "likes", "comments"):
        if col in rows:
            rows[col] = rows[col].astype("float64")  # integer columns with gaps must be floats
    rows["is_sponsored"] = rows["is_sponsored"].astype(bool)
    return rows.reset_index(drop=True)


def dataframe_split(frame: pd.DataFrame) -> dict[str, object]:
    """``{"dataframe_split": ...}`` request body: missing cells as JSON null, times as ISO text."""
    frame = frame.copy()
    for col in frame.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[col]):
            frame[col] = frame[col].map(lambda t: t.isoformat() if pd.notna(t) else None)
    clean = frame.astype(object).where(frame.notna(), None)
    return {
        "dataframe_split": {
            "columns": [str(c) for c in clean.columns],
            "data": clean.to_numpy().tolist(),
        }
    }
