"""Python API for other services: load a saved model and score raw candidate tables.

>>> from serving import load_model
>>> predictor = load_model("latest")
# or models/<version>, models:/engagement@champion
>>> table = predictor.predict(profiles, posts)             # one row per influencer in ``profiles``

Predictions come from the fitted pipeline itself (:meth:`EngagementModel.predict_features` on
:func:`features.aggregate.compute_features` output), so serving has no feature code of its own.
What this module adds is what a planner needs around the numbers: expected engagements per post,
the candidate's place among training peers of the same tier and niche, reasons in words, and a
status for every candidate, including those that cannot be scored (never a silent gap):

* ``ok``: scored from profile and post history;
* ``ok (no post history: profile-only estimate)``: no posts before the cutoff (cold start);
* ``zero followers: engagement rate undefined``: ER divides by followers, so no prediction;
* ``no profile``: named in a shortlist (or fee table) but absent from the profiles table.

Posts whose influencer has no profile are set aside by validation and listed in its report.

Every other break of the data contract raises :class:`~features.contract.DataValidationError`
with the full report, exactly as in training.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.aggregate import PLANNED_POST_FEATURES, compute_features, examples_at
from features.artifact import MODEL_FILE, ArtifactError, load_artifact, resolve_model_dir
from features.contract import (
    ZERO_FOLLOWERS,
    DataError,
    DataValidationError,
    ValidatedData,
    ValidationReport,
    check_cutoff,
    clean_categories,
    parse_time,
    validate,
    zero_follower_profiles,
)
from features.engagement import er_from_log
from features.pipeline import platform_names
from features.registry import download_verified, engage_folder
from features.tables import value_codes
from serving.explain import reasons as explain_reasons

MLFLOW_SCHEMES = ("models:/", "runs:/")

STATUS_OK = "ok"
STATUS_COLD = "ok (no post history: profile-only estimate)"
STATUS_ZERO_FOLLOWERS = "zero followers: engagement rate undefined"
STATUS_NO_PROFILE = "no profile"
# Added to the status of a creator on a platform the model was not trained on.
UNSEEN_PLATFORM = (
    "platform '{platform}' not in training ({trained}): forecast from the creator's own level "
    "without the model's corrections; interval calibrated on {trained}"
)
# Candidates scored between two progress reports of Predictor.score (when it is asked for them).
SCORE_BLOCK = 5_000
# The steps of Predictor.score before the scoring blocks, by the name a progress bar shows
# (``steps(task, done, total)``): each is one vectorised pass, counted 0 of 1, then 1 of 1.
CHECKING_STEP = "candidates checked against the contract"
FEATURES_STEP = "candidates' features computed"
# Predictor.score's planned post and campaign KPI per candidate, by the names of the optional
# columns that carry them in a shortlist (engage score) and in a REST request.
PLAN_COLUMNS = ("post_type", "sponsored", "target_engagements")

OUTPUT_COLUMNS = (
    "influencer",
    "predicted_er",
    "er_low",
    "er_high",
    "expected_engagements",
    "engagements_p10",
    "engagements_p50",
    "engagements_p90",
    "target_engagements",
    "p_reach",
    "planned_post",
    "expected_views",
    "predicted_er_per_view",
    "history_posts",
    "tier",
    "category",
    "followers",
    "peer_percentile",
    "reasons",
    "has_history",
    "status",
    "as_of",
)


@dataclass
class Scored:
    """A scored table with the validation report and the facts a report needs."""

    table: pd.DataFrame
    report: ValidationReport
    posts_date_range: tuple[str, str] | None
    as_of: str


def _strip_keys(values: pd.Series) -> pd.Series:
    """Influencer keys as the contract normalises them (text, surrounding space removed)."""
    return values.astype("string").str.strip()


def _column(frame: pd.DataFrame, name: str) -> Any:
    """The frame's column called ``name`` once surrounding
    space is removed (as the contract does)."""
    return next((c for c in frame.columns if str(c).strip() == name), None)


def validate_candidates(
    profiles: pd.DataFrame,
    posts: pd.DataFrame | None,
    *,
    now: pd.Timestamp | None = None,
    profiles_file: str = "profiles",
    posts_file: str = "posts",
) -> tuple[ValidatedData, pd.DataFrame]:
    """Validate as training does; the contract sets zero-follower profiles (and their posts) aside.

    Returns the validated data and the zero-follower profiles (``influencer`` and ``category`` as
    the contract cleans them), which scoring lists unscored; the report's note on them says so.
    """
    try:
        data = validate(
            profiles, posts, now=now, profiles_file=profiles_file, posts_file=posts_file
        )
    except DataValidationError as exc:
        _note_unscored(exc.report)
        raise DataValidationError(exc.report) from None
    _note_unscored(data.report)
    zero = zero_follower_profiles(data.report)
    categories = clean_categories(zero["category"]) if "category" in zero else "other"
    zero = pd.DataFrame({"influencer": zero["influencer"], "category": categories})
    return data, zero.drop_duplicates("influencer").reset_index(drop=True)


def _note_unscored(report: ValidationReport) -> None:
    """Say in the report what scoring does with zero-follower profiles."""
    for problem in report.handled:
        if problem.table == "profiles" and problem.message == ZERO_FOLLOWERS:
            problem.action = f"not scored; listed with status '{STATUS_ZERO_FOLLOWERS}'"


class Predictor:
    """A loaded, verified engage model with the planner-facing ``predict``.

    Parameters
    ----------
    model
        The fitted :class:`features.pipeline.EngagementModel` (metadata attached by loading).
    path
        Where it was loaded from: the verified ``models/<version>`` folder, or the MLflow
        reference (whose temporary copy is gone once the model is in memory).
    """

    def __init__(self, model: Any, path: Path):
        self.model = model
        self.path = Path(path)
        self.metadata: dict[str, Any] = getattr(model, "metadata", {}) or {}

    @property
    def version(self) -> str:
        return str(self.metadata.get("version", self.path.name))

    @property
    def interval_level(self) -> float:
        return float(getattr(self.model, "interval_level", 0.8))

    @property
    def trained_platforms(self) -> list[str]:
        """The platforms of the model's training posts (empty when the model does not record
        them)."""
        return sorted(self.metadata.get("planned_post_support") or {})

    # ------------------------------------------------------------------ scoring

    def predict(
        self,
        profiles: pd.DataFrame,
        posts: pd.DataFrame | None = None,
        as_of: pd.Timestamp | pd.Series | str | None = None,
        *,
        shortlist: Iterable[str] | None = None,
        now: pd.Timestamp | None = None,
        explain: bool = True,
        target_engagements: float | pd.Series | None = None,
        post_type: str | pd.Series | None = None,
        sponsored: bool | pd.Series | None = None,
    ) -> pd.DataFrame:
        """Score raw profiles and posts in the data contract: one row per influencer.

        Parameters
        ----------
        profiles, posts
            Raw tables (as read from files; validated here). ``posts`` may be None.
        as_of
            Cutoff: only posts strictly before it count. None = each profile's ``as_of``
            column where present, else now. A Series (by influencer) gives one cutoff each.
        shortlist
            Influencers to score; others in ``profiles`` are skipped, and names with no
            profile get a ``no profile`` row. None scores every profile (posts without a
            profile are then only listed in the validation report).
        now
            Clock for the "timestamp in the future" check (default: the machine's clock).
        explain
            Compute ``reasons`` (LightGBM ``pred_contrib``); False leaves them empty.
        target_engagements
            A campaign KPI in engagements per post (one number, or a Series by influencer):
            ``p_reach`` is the calibrated probability that the post reaches it.
        post_type, sponsored
            The planned post: its media type (``video``, ``image``, ``carousel``, ...) and
            whether it is sponsored; one value for all, or a Series by influencer. Not given:
            the creator's usual format, not sponsored. ``planned_post`` says what was assumed,
            and when training saw too few such posts to learn from.

        Returns
        -------
        pandas.DataFrame
            Columns :data:`OUTPUT_COLUMNS`, profiles order, then ``no profile`` rows.
        """
        return self.score(
            profiles,
            posts,
            as_of,
            shortlist=shortlist,
            now=now,
            explain=explain,
            target_engagements=target_engagements,
            post_type=post_type,
            sponsored=sponsored,
        ).table

    def score(
        self,
        profiles: pd.DataFrame,
        posts: pd.DataFrame | None = None,
        as_of: pd.Timestamp | pd.Series | str | None = None,
        *,
        shortlist: Iterable[str] | None = None,
        now: pd.Timestamp | None = None,
        explain: bool = True,
        profiles_file: str = "profiles",
        posts_file: str = "posts",
        target_engagements: float | pd.Series | None = None,
        post_type: str | pd.Series | None = None,
        sponsored: bool | pd.Series | None = None,
        progress: Callable[[int, int], None] | None = None,
        steps: Callable[[str, int, int], None] | None = None,
    ) -> Scored:
        """Like :meth:`predict`, and also return the validation report and data dates.

        ``progress(done, total)``, if given, is called as the candidates are scored, a block
        of :data:`SCORE_BLOCK` at a time (each row is scored on its own: the same table).
        ``steps(task, done, total)``, if given, is told when the steps before it start and end
        (:data:`CHECKING_STEP`, :data:`FEATURES_STEP`).
        """
        step = steps or (lambda task, done, total: None)
        # A text cutoff is ISO 8601, as the contract reads times ("now" or "01/02/2020" are
        # not guessed), and any cutoff lies between the first plausible post and now.
        try:
            if isinstance(as_of, str):
                as_of = parse_time(as_of, "as_of")
            if isinstance(as_of, pd.Timestamp):
                as_of = check_cutoff(
                    as_of if as_of.tzinfo else as_of.tz_localize("UTC"), "as_of", now
                )
        except ValueError as exc:
            raise DataError(str(exc)) from None
        step(CHECKING_STEP, 0, 1)
        data, zero = validate_candidates(
            profiles, posts, now=now, profiles_file=profiles_file, posts_file=posts_file
        )
        step(CHECKING_STEP, 1, 1)
        zero_keys = zero["influencer"].astype(str).tolist()
        wanted = (
            None
            if shortlist is None
            else pd.Index(pd.Series(list(shortlist), dtype="string").str.strip().dropna().unique())
        )

        known = data.profiles["influencer"]
        to_score = data.profiles
        if wanted is not None:
            score_mask = known.isin(wanted).to_numpy()
            to_score = data.profiles[score_mask] if not score_mask.all() else data.profiles
        posts_in = data.posts  # without the zero-follower influencers' posts (set aside)
        if len(to_score) != len(data.profiles):
            posts_in = posts_in[posts_in["influencer"].isin(to_score["influencer"]).to_numpy()]

        parts = []
        if len(to_score):
            step(FEATURES_STEP, 0, 1)
            examples = examples_at(to_score, as_of)
            if post_type is not None:
                examples["post_type"] = _per_row_value(post_type, examples["influencer"])
            if sponsored is not None:
                examples["sponsored"] = _per_row_value(sponsored, examples["influencer"])
            base = compute_features(to_score, posts_in, examples)
            step(FEATURES_STEP, 1, 1)
            if progress is None:
                scored = self.predict_features(
                    base, explain=explain, target_engagements=target_engagements
                )
            else:
                scored = self._predict_in_blocks(base, explain, target_engagements, progress)
            parts.append(scored)
        zero_profiles = zero
        if wanted is not None:
            zero_profiles = zero_profiles[zero_profiles["influencer"].isin(wanted).to_numpy()]
        if len(zero_profiles):
            parts.append(
                _unscored(
                    zero_profiles["influencer"],
                    STATUS_ZERO_FOLLOWERS,
                    category=zero_profiles["category"],
                    followers=0.0,
                )
            )
        missing = _no_profile_keys(data, wanted, zero_keys)
        if missing:
            parts.append(_unscored(pd.Series(missing, dtype=object), STATUS_NO_PROFILE))

        if len(parts) == 1:
            table = parts[0]  # already in profiles order
        else:
            table = (
                pd.concat(parts, ignore_index=True)
                if parts
                else _unscored(pd.Series([], dtype=object), STATUS_NO_PROFILE)
            )
            # Profiles order first (zero-follower rows where they were), then names without
            # profile: the input's order (validation set the zero-follower rows aside).
            keys = _strip_keys(profiles[_column(profiles, "influencer")])
            position = pd.Series(np.arange(len(keys)), index=keys.to_numpy()).groupby(level=0).min()
            order = table["influencer"].map(position).fillna(len(keys)).to_numpy()
            table = table.iloc[np.argsort(order, kind="stable")].reset_index(drop=True)

        times = posts_in["posted_at"]  # the scored candidates' posts
        posts_range = (str(times.min()), str(times.max())) if len(times) else None
        return Scored(
            table[list(OUTPUT_COLUMNS)],
            data.report,
            posts_range,
            _describe_as_of(as_of, data.profiles),
        )

    def predict_features(
        self,
        base: pd.DataFrame,
        *,
        explain: bool = True,
        target_engagements: float | pd.Series | None = None,
    ) -> pd.DataFrame:
        """Planner columns from precomputed base features (:func:`compute_features` output)."""
        base = self.usual_format_where_unknown(base)
        matrix = self.model.booster_matrix(base)  # once, for the prediction and the reasons
        core = self.model.predict_features(base, matrix)
        # Columns gathered in a dict and framed once: pandas' fixed cost per inserted column
        # would be a large share of the time to score one candidate.
        predicted_er = core["predicted_er"].to_numpy(dtype="float64")
        # The model carries followers as exp(log followers), a few ulps off (10000.000000000002);
        # counts are whole numbers (the contract refuses fractions), so rounding gives back the
        # input's exact value for every output.
        followers = np.rint(core["followers"].to_numpy(dtype="float64"))
        history = core["has_history"].to_numpy(dtype=bool)
        if explain and len(base):
            # Reasons name the niche the model used: the category on its fitted vocabulary.
            niche = core["category"].to_numpy(dtype=object)
            same = (
                "category" not in base or (niche == base["category"].to_numpy(dtype=object)).all()
            )
            named = base if same else base.assign(category=niche)
            reasons = explain_reasons(self.model.contributions(base, matrix), named)
        else:
            reasons = np.full(len(base), "", dtype=object)
        predicted_log = core["predicted_log_er"].to_numpy(dtype="float64")
        # Engagements at the 10th, 50th and 90th percentile of the calibrated predictive
        # distribution (the point forecast is near, not always at, its median).
        quantiles = self.model.predict_log_quantiles(base, PERCENTILES, predicted_log)
        engagements = er_from_log(quantiles, followers[:, None]) * followers[:, None]
        target = _per_row(target_engagements, core["influencer"])
        p_reach = np.full(len(base), np.nan)
        wanted = np.isfinite(target)
        if wanted.any():
            # Reaching T interactions means log ER >= ln((T + 1) / followers).
            threshold = np.log((np.where(wanted, target, 0.0) + 1.0) / followers)
            p_reach = np.where(
                wanted, self.model.prob_at_least(base, threshold, predicted_log), np.nan
            )
        # Views on the planned post: the creator's median views per follower so far (TikTok,
        # YouTube); per view is the rate those platforms' planners read.
        views_per_follower = (
            np.exp(base["log_views_per_follower"].to_numpy(dtype="float64"))
            if "log_views_per_follower" in base
            else np.full(len(base), np.nan)
        )
        expected_views = views_per_follower * followers
        expected = predicted_er * followers
        columns = {
            "influencer": core["influencer"].array,
            "predicted_er": predicted_er,
            "er_low": core["er_low"].to_numpy(dtype="float64"),
            "er_high": core["er_high"].to_numpy(dtype="float64"),
            "expected_engagements": expected,
            "engagements_p10": engagements[:, 0],
            "engagements_p50": engagements[:, 1],
            "engagements_p90": engagements[:, 2],
            "target_engagements": target,
            "p_reach": p_reach,
            "planned_post": self.describe_planned_post(base),
            "expected_views": expected_views,
            "predicted_er_per_view": np.divide(
                expected, expected_views, out=np.full(len(base), np.nan), where=expected_views > 0
            ),
            # Earlier posts the forecast stands on: what sets the width of its interval.
            "history_posts": base["n_history_posts"].to_numpy(dtype="float64")
            if "n_history_posts" in base
            else np.full(len(base), np.nan),
            "tier": core["tier"].array,
            "category": core["category"].array,
            "followers": followers,
            "peer_percentile": self.peer_percentile(
                core["predicted_log_er"].to_numpy(dtype="float64"), core["tier"], core["category"]
            ),
            "reasons": np.asarray(reasons, dtype=object),
            "has_history": history.astype(object),
            "status": self._statuses(base, matrix, history),
            "as_of": _iso_times(base["cutoff"]) if "cutoff" in base else None,
        }
        return pd.DataFrame(columns)

    def _statuses(self, base: pd.DataFrame, matrix: np.ndarray, history: np.ndarray) -> np.ndarray:
        """Each row's status ("ok", or the cold-start one), with a note where its platform was
        not in training: its forecast is then the creator's own level alone
        (:meth:`~features.pipeline.EngagementModel.unseen_platform`)."""
        status = np.where(history, STATUS_OK, STATUS_COLD).astype(object)
        unseen = self.model.unseen_platform(matrix)
        if unseen.any():
            on = platforms_text(self.trained_platforms)
            platform = platform_names(base)
            for name in pd.unique(platform[unseen]):
                rows = unseen & (platform == name)
                status[rows] = [
                    f"{s}; {UNSEEN_PLATFORM.format(platform=name, trained=on)}"
                    for s in status[rows]
                ]
        return status

    def _predict_in_blocks(
        self,
        base: pd.DataFrame,
        explain: bool,
        target_engagements: float | pd.Series | None,
        progress: Callable[[int, int], None],
    ) -> pd.DataFrame:
        """:meth:`predict_features` a block of rows at a time, counting them for ``progress``."""
        total = len(base)
        blocks = []
        progress(0, total)
        for start in range(0, total, SCORE_BLOCK):
            block = base.iloc[start : start + SCORE_BLOCK]
            blocks.append(
                self.predict_features(block, explain=explain, target_engagements=target_engagements)
            )
            progress(start + len(block), total)
        return blocks[0] if len(blocks) == 1 else pd.concat(blocks, ignore_index=True)

    def usual_format_where_unknown(self, base: pd.DataFrame) -> pd.DataFrame:
        """A creator without history and no stated format is given its platform's most common
        format in training: every training post had a known format, so a missing one would
        be read as LightGBM reads values it never saw (as 0: an image)."""
        support: dict[str, dict[str, int]] = self.metadata.get("planned_post_support") or {}
        if "planned_video" not in base or not support:
            return base
        unknown = base["planned_video"].isna().to_numpy()
        if not unknown.any():
            return base
        platform = (
            base["platform"].astype(str).to_numpy()
            if "platform" in base
            else np.full(len(base), "")
        )
        video = base["planned_video"].to_numpy(dtype="float64", copy=True)
        carousel = base["planned_carousel"].to_numpy(dtype="float64", copy=True)
        for name in pd.unique(platform[unknown]):
            seen = support.get(str(name)) or {}
            if not seen:
                continue
            usual = max(("video", "carousel", "image"), key=lambda kind: seen.get(kind, 0))
            rows = unknown & (platform == name)
            video[rows], carousel[rows] = float(usual == "video"), float(usual == "carousel")
        return base.assign(planned_video=video, planned_carousel=carousel)

    def describe_planned_post(self, base: pd.DataFrame) -> np.ndarray:
        """What post each forecast is for ("video, sponsored"), and a warning where training had
        too few such posts on the platform to learn from (the forecast then ignores that)."""
        support: dict[str, dict[str, int]] = self.metadata.get("planned_post_support") or {}
        video = (
            base["planned_video"].to_numpy(dtype="float64")
            if "planned_video" in base
            else np.full(len(base), np.nan)
        )
        carousel = (
            base["planned_carousel"].to_numpy(dtype="float64")
            if "planned_carousel" in base
            else np.zeros(len(base))
        )
        sponsored = (
            base["planned_sponsored"].to_numpy(dtype="float64")
            if "planned_sponsored" in base
            else np.zeros(len(base))
        )
        platform = (
            base["platform"].astype(str).to_numpy()
            if "platform" in base
            else np.full(len(base), "")
        )
        kind = np.where(
            np.isnan(video),
            "usual format",
            np.where(video == 1, "video", np.where(carousel == 1, "carousel", "image")),
        )
        paid = np.where(sponsored == 1, "sponsored", "organic")
        ignored = not set(self.model.feature_names_) & set(PLANNED_POST_FEATURES)
        text = {}
        for key in pd.unique(
            pd.Series([f"{a}|{b}|{c}" for a, b, c in zip(kind, paid, platform, strict=True)])
        ):
            a, b, c = key.split("|")
            seen = support.get(c, {})
            thin = [
                f"{name} ({seen.get(name, 0)})"
                for name, wanted in (
                    (a, a in ("video", "carousel", "image")),
                    (b, b == "sponsored"),
                )
                if wanted and seen and seen.get(name, 0) < MIN_PLANNED_SUPPORT
            ]
            note = (
                f"; too few {' and '.join(thin)} {c} posts in training to learn from"
                if thin
                else ""
            )
            if ignored:
                note += (
                    "; this model's forecast does not depend on the planned format or sponsorship"
                )
            text[key] = f"{a}, {b}{note}"
        return np.array(
            [text[f"{a}|{b}|{c}"] for a, b, c in zip(kind, paid, platform, strict=True)],
            dtype=object,
        )

    def peer_percentile(
        self, predicted_log_er: np.ndarray, tier: pd.Series, category: pd.Series
    ) -> np.ndarray:
        """Where each predicted log ER falls (0-100) among training labels of its tier/niche.

        Uses ``metadata["peer_reference"]`` (label quantiles 0..100 per ``tier/category``,
        fallback ``*`` for all training examples); NaN if the model carries none.
        """
        reference: dict[str, list[float]] = self.metadata.get("peer_reference") or {}
        out = np.full(len(predicted_log_er), np.nan)
        if not reference:
            return out
        # Keys made once per distinct tier/niche pair, not once per row.
        tier_code, tiers = value_codes(tier)
        niche_code, niches = value_codes(category)
        pair = tier_code * len(niches) + niche_code
        for code in pd.unique(pair):
            key = f"{tiers[code // len(niches)]}/{niches[code % len(niches)]}"
            quantiles = reference.get(key) or reference.get("*")
            if not quantiles:
                continue
            hit = pair == code
            out[hit] = percentile_in(
                np.asarray(predicted_log_er)[hit], np.asarray(quantiles, dtype="float64")
            )
        return out

    def predict_for_rest(self, profiles: pd.DataFrame, posts: pd.DataFrame | None) -> pd.DataFrame:
        """Kept for MLflow models logged with the first pyfunc wrapper, which calls this."""
        return self.predict(profiles, posts)


PERCENTILES = np.array([0.1, 0.5, 0.9])
# Training target posts of a kind (video, sponsored, ...) on a platform below which the model is
# said not to have learned from them.
MIN_PLANNED_SUPPORT = 100


def _per_row_value(value: object, influencers: pd.Series) -> np.ndarray:
    """One value for all rows, or a Series by influencer (others missing), as objects."""
    if isinstance(value, pd.Series):
        return influencers.map(value).to_numpy(dtype=object)
    return np.full(len(influencers), value, dtype=object)


def _per_row(value: float | pd.Series | None, influencers: pd.Series) -> np.ndarray:
    """A number for every row: one for all, or a Series by influencer (others NaN)."""
    if value is None:
        return np.full(len(influencers), np.nan)
    return pd.to_numeric(pd.Series(_per_row_value(value, influencers))).to_numpy(
        dtype="float64", na_value=np.nan
    )


def _iso_times(values: pd.Series) -> np.ndarray:
    """UTC times as ISO text; formatted once per distinct time (usually one cutoff for all)."""
    times = pd.to_datetime(values, utc=True)
    codes, uniques = pd.factorize(times)
    text = np.array([t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in uniques] + [None], dtype=object)
    return text[codes]  # code -1 (missing) picks the trailing None


def percentile_in(values: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Percentile (0-100) of ``values`` given quantiles at 0, 1, ..., 100 %, linearly interpolated.

    Tied quantiles (many equal labels) take the middle of their percentile range, so a value
    equal to a tied block is placed at its centre, not its edge.
    """
    levels = np.linspace(0.0, 100.0, len(quantiles))
    unique, inverse = np.unique(quantiles, return_inverse=True)
    mid = np.bincount(inverse, weights=levels) / np.bincount(inverse)
    if len(unique) == 1:
        return np.where(values < unique[0], 0.0, np.where(values > unique[0], 100.0, 50.0))
    return np.interp(values, unique, mid, left=0.0, right=100.0)


def _unscored(
    influencers: pd.Series,
    status: str,
    *,
    category: pd.Series | None = None,
    followers: float = np.nan,
) -> pd.DataFrame:
    n = len(influencers)
    table = pd.DataFrame({"influencer": influencers.to_numpy(dtype=object)})
    for col in OUTPUT_COLUMNS[1 : OUTPUT_COLUMNS.index("tier")]:  # the figures
        table[col] = np.full(n, np.nan)
    table["tier"] = np.full(n, None, dtype=object)
    table["category"] = (
        category.to_numpy(dtype=object) if category is not None else np.full(n, None, dtype=object)
    )
    table["followers"] = np.full(n, followers, dtype="float64")
    table["peer_percentile"] = np.full(n, np.nan)
    table["reasons"] = np.full(n, "", dtype=object)
    table["has_history"] = np.full(n, None, dtype=object)
    table["status"] = np.full(n, status, dtype=object)
    table["as_of"] = np.full(n, None, dtype=object)
    return table


def _no_profile_keys(
    data: ValidatedData, wanted: pd.Index | None, zero_keys: list[str]
) -> list[str]:
    """Shortlisted names without a profile (posts without a profile are in the report instead)."""
    if wanted is None:
        return []
    have = set(data.profiles["influencer"]) | set(zero_keys)
    return [str(k) for k in wanted if k not in have]


def _describe_as_of(as_of: pd.Timestamp | pd.Series | str | None, profiles: pd.DataFrame) -> str:
    if isinstance(as_of, pd.Series):
        return "one cutoff per candidate"
    if as_of is not None:
        return pd.Timestamp(as_of).strftime("%Y-%m-%d %H:%M UTC")
    if "as_of" in profiles and profiles["as_of"].notna().any():
        return "one cutoff per candidate (profiles' as_of column; now where empty)"
    return pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%d %H:%M UTC") + " (now)"


# --------------------------------------------------------------------------- loading


def load_model(
    ref: str | Path, models_dir: Path = Path("models"), tracking_uri: str | None = None
) -> Predictor:
    """Load ``models/<version>``, ``latest`` or an MLflow URI (``models:/engagement@champion``).

    Signed manifests and library versions are checked before anything is unpickled. An MLflow
    model is fetched into a temporary folder that is removed once the model is in memory.

    Raises
    ------
    ArtifactError
        Missing folder, no saved model, a missing key, an unsigned or wrongly signed folder, a
        file whose SHA-256 does not match, other library versions, or an MLflow reference that
        cannot be fetched.
    """
    if str(ref).startswith(MLFLOW_SCHEMES):
        with tempfile.TemporaryDirectory(prefix="engage-model-") as tmp:
            root = download_verified(str(ref), tracking_uri, Path(tmp))
            return Predictor(
                load_engage_model(engage_folder(str(ref), root), str(ref)), Path(str(ref))
            )
    path = resolve_model_dir(ref, models_dir)
    return Predictor(load_engage_model(path, str(path)), path)


def platforms_text(names: Sequence[str]) -> str:
    """Training platforms as a planner reads them: "instagram, tiktok" ("other platforms" when
    the model does not record them)."""
    return ", ".join(names) if names else "other platforms"


# What Predictor calls on the fitted pipeline (features.pipeline.EngagementModel).
MODEL_METHODS = (
    "booster_matrix",
    "predict_features",
    "contributions",
    "predict_log_quantiles",
    "unseen_platform",
)


def load_engage_model(folder: Path, name: str) -> Any:
    """The verified folder's model, if it is one a Predictor can score with: a signed folder of
    something else (another project's pickle under the same key) is refused here, with exit 2,
    rather than failing on the first request."""
    model = load_artifact(folder)
    missing = [m for m in MODEL_METHODS if not callable(getattr(model, m, None))]
    if missing:
        raise ArtifactError(
            f"{name}: {MODEL_FILE} holds a {type(model).__name__}, not an engage model "
            f"(no {', '.join(missing)}); name an engage model folder"
        )
    return model


__all__ = [
    "OUTPUT_COLUMNS",
    "STATUS_COLD",
    "STATUS_NO_PROFILE",
    "STATUS_OK",
    "STATUS_ZERO_FOLLOWERS",
    "UNSEEN_PLATFORM",
    "ArtifactError",
    "Predictor",
    "Scored",
    "load_model",
    "percentile_in",
    "platforms_text",
]
