"""MLflow pyfunc model (models-from-code): a thin wrapper over :class:`serving.predictor.Predictor`.

Training logs this file with ``mlflow.pyfunc.log_model(python_model=<this file>, artifacts=
{"engage_model": <models/<version> folder>})``; ``engage serve`` saves it the same way for a
local folder. At load time the folder is verified (manifest, library versions) before anything
is unpickled.

Input (REST ``/invocations`` and ``pyfunc.predict``): **one row per post, each carrying its
influencer's profile columns** (see :mod:`serving.schema` for the enforced types):

* profile columns, repeated on every post row of the influencer: ``influencer`` and
  ``followers`` (required), optional ``following``, ``posts_count``, ``category``,
  ``platform``, ``country``, ``verified``, ``as_of`` (ISO time: score as of then, using only
  earlier posts);
* the planned post, optional and repeated on every row of the influencer like the profile
  columns, as a shortlist gives it to ``engage score``: ``post_type`` (image, video or
  carousel; reel and short count as video), ``sponsored`` (true/false, yes/no, 1/0) and
  ``target_engagements`` (a positive number: adds ``p_reach``). An empty cell: the creator's
  usual format, organic, no target;
* post columns of the data contract: ``post_id``, ``posted_at`` (ISO 8601), ``likes``,
  ``comments``, optional ``shares``, ``saves``, ``views``, ``media_type``, ``is_sponsored``,
  ``hashtags`` ('|'-separated), ``caption``, ``image_description``.

A candidate without posts is one row with the post columns empty (or absent altogether when no
candidate has posts). The profile columns must agree on every row of an influencer.

Output: one row per influencer, the columns of :data:`serving.predictor.OUTPUT_COLUMNS`
(``reasons`` as one string, ``as_of`` as ISO text, missing values as null: a candidate that
could not be scored has null predictions and a ``status`` saying why).

Malformed input (a missing required column, a non-numeric count, a contract break) raises
:class:`mlflow.exceptions.MlflowException` with ``INVALID_PARAMETER_VALUE`` or ``BAD_REQUEST``,
which the scoring server answers with HTTP 400 and the message; row numbers in the message are
rows of the request (1 = first data row).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import set_model
from mlflow.protos.databricks_pb2 import BAD_REQUEST, INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel

from features.engine import take_rows
from features.registry import MODEL_ARTIFACT
from features.tables import has_text, text_values
from serving.predictor import PLAN_COLUMNS
from serving.schema import POST_COLUMNS, PROFILE_COLUMNS

REQUEST = "request"


def split_rows(
    frame: pd.DataFrame,
) -> tuple[pd.DataFrame, pd.DataFrame | None, np.ndarray, np.ndarray]:
    """One-row-per-post input -> (profiles, posts) in the data contract, with request row numbers.

    Returns
    -------
    profiles, posts, profile_rows, post_rows
        ``profile_rows[i]`` is the first request row (1-based) of profile ``i``, ``post_rows[j]``
        the request row of post ``j``: validation reports rows of the tables it is given, and
        these map them back to what the client sent. ``posts`` is None when the request has no
        post columns.
    """
    frame = frame.reset_index(drop=True)
    request_rows = np.arange(1, len(frame) + 1)
    profile_cols = [c for c in PROFILE_COLUMNS if c in frame]
    # Identical copies of a profile (one per post) collapse; differing ones stay, and validation
    # reports them as conflicting duplicates.
    first = _first_copies(frame, profile_cols)
    profiles = take_rows(frame, profile_cols, np.flatnonzero(first))
    post_cols = [c for c in frame.columns if c not in PROFILE_COLUMNS]
    if not any(c in POST_COLUMNS for c in post_cols):
        return profiles, None, request_rows[first], np.zeros(0, dtype="int64")
    if "post_id" in frame:
        # Rows whose post columns are all empty are cold-start candidates, not posts.
        has_post = np.zeros(len(frame), dtype=bool)
        for col in (c for c in post_cols if c in POST_COLUMNS):
            values = frame[col]
            if values.dtype.kind in "iufb":  # numbers and flags: a cell is there unless missing
                has_post |= values.notna().to_numpy(dtype=bool)
            else:
                has_post |= has_text(values)
    else:
        has_post = np.ones(len(frame), dtype=bool)  # validation then reports post_id as missing
    posts = take_rows(frame, ["influencer", *post_cols], np.flatnonzero(has_post))
    return profiles, posts, request_rows[first], request_rows[has_post]


# A request is a few dozen rows, so pandas' fixed cost per call is what it pays: these helpers
# keep to a handful of pandas calls each, not ``DataFrame.duplicated``, ``.str`` chains, ``.loc``.
# Rows are taken with :func:`features.engine.take_rows`, column by column.


def _first_copies(frame: pd.DataFrame, cols: list[str]) -> np.ndarray:
    """``~frame[cols].astype("string").duplicated()``: the first row of each distinct profile."""
    columns = [text_values(frame[c]) for c in cols]
    first = np.zeros(len(frame), dtype=bool)
    seen: set[tuple[object, ...]] = set()
    for row, key in enumerate(zip(*columns, strict=True)):
        if key not in seen:
            seen.add(key)
            first[row] = True
    return first


def remap_rows(report: Any, profile_rows: np.ndarray, post_rows: np.ndarray) -> None:
    """Point a validation report's row numbers at request rows (in place)."""
    for problem in report.problems:
        table_rows = profile_rows if problem.table == "profiles" else post_rows
        problem.rows = [int(table_rows[r - 1]) for r in problem.rows if 0 < r <= len(table_rows)]
        problem.file = f"{REQUEST} ({problem.table} columns)"


def to_response(table: pd.DataFrame) -> pd.DataFrame:
    """Standard-JSON output: every missing value (unscored rows) as None, so the server writes
    ``null`` rather than ``NaN``, which JSON parsers other than Python's refuse."""
    out = table.copy()
    missing = out.isna()
    for col in out.columns[missing.any().to_numpy()]:  # one isna for the table, not one per column
        out[col] = out[col].astype(object).where(~missing[col], None)
    return out


# A shortlist of a few hundred candidates with their recent posts is a few thousand rows; far
# larger requests are batch jobs that would hold the server for seconds, so they are refused.
MAX_REQUEST_ROWS = 20_000


def planned_posts(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The request without its planned-post columns (:data:`serving.predictor.PLAN_COLUMNS`),
    and those as :meth:`Predictor.score`'s ``post_type``, ``sponsored`` and
    ``target_engagements`` per influencer, read as ``engage score`` reads a shortlist's
    (:func:`serving.planner.check_planned_posts`: a bad value or two plans for one influencer
    is a :class:`DataError` naming the request rows)."""
    from serving.planner import check_planned_posts, planned_post_inputs

    plan_cols = [c for c in frame.columns if str(c).strip().lower() in PLAN_COLUMNS]
    if not plan_cols:
        return frame, {}
    plan = check_planned_posts(frame[["influencer", *plan_cols]], REQUEST, "its planned posts")
    return frame.drop(columns=plan_cols), planned_post_inputs(plan)


def predict_rows(predictor: Any, frame: pd.DataFrame) -> pd.DataFrame:
    """Score one-row-per-post input with a
    :class:`~serving.predictor.Predictor`; errors as MlflowException."""
    from features.contract import DataError, DataValidationError

    if not isinstance(frame, pd.DataFrame):
        raise MlflowException(
            f"expected a table (DataFrame), got {type(frame).__name__}", error_code=BAD_REQUEST
        )
    for required in ("influencer", "followers"):
        if required not in frame:
            raise MlflowException(
                f"the input has no '{required}' column; every row needs "
                "the influencer's profile columns (see serving.pyfunc)",
                error_code=INVALID_PARAMETER_VALUE,
            )
    if len(frame) == 0:
        raise MlflowException("the input has no rows", error_code=INVALID_PARAMETER_VALUE)
    if len(frame) > MAX_REQUEST_ROWS:
        raise MlflowException(
            f"the request has {len(frame)} rows; one request takes at most "
            f"{MAX_REQUEST_ROWS} (split the shortlist, or use `engage score` for batches)",
            error_code=INVALID_PARAMETER_VALUE,
        )
    try:
        frame, planned = planned_posts(frame)
        profiles, posts, profile_rows, post_rows = split_rows(frame)
        scored = predictor.score(
            profiles, posts, profiles_file=REQUEST, posts_file=REQUEST, **planned
        )
    except DataValidationError as exc:
        remap_rows(exc.report, profile_rows, post_rows)
        raise MlflowException(
            str(DataValidationError(exc.report)), error_code=INVALID_PARAMETER_VALUE
        ) from None
    except DataError as exc:
        raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from None
    return to_response(scored.table)


class EngagementPyfunc(PythonModel):
    """Loads the verified engage artifact and answers with one prediction row per influencer."""

    def load_context(self, context: Any) -> None:
        from serving.predictor import load_model

        self.predictor = load_model(Path(context.artifacts[MODEL_ARTIFACT]))

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        return predict_rows(self.predictor, model_input)


set_model(EngagementPyfunc())
