"""The fitted pipeline: learned feature steps, a LightGBM regressor and a calibrated interval.

One :class:`EngagementModel` object is what training fits, what is saved to ``models/`` and
MLflow, and what serving loads: training, batch scoring and REST all call the same
:meth:`EngagementModel.predict` on raw profiles and posts, so the feature code cannot drift
between them. Training decides how to split data for early stopping and calibration; this
module only holds the fitted pieces and applies them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.pipeline import Pipeline

from features.aggregate import CATEGORICAL_FEATURES, NUMERIC_FEATURES, compute_features, examples_at
from features.contract import DEFAULT_PLATFORM, validate
from features.engagement import ER_DEFINITION, er_from_log
from features.tables import value_codes
from features.transformers import (
    CategoryEncoder,
    CategoryVocabulary,
    HashtagNiche,
    TierNichePrior,
)

# Conformal groups smaller than this fall back to the interval learned on all calibration rows.
MIN_GROUP_SIZE = 30
# Probabilities at which each conformal group keeps its residual quantiles: the predictive
# distribution behind p_reach and the engagement percentiles (0 and 1 are the extremes seen).
DISTRIBUTION_GRID = np.linspace(0.0, 1.0, 101)
# Per-platform stages (trained on several platforms): the patience of their early stopping and
# the most rounds one may add.
PLATFORM_STAGE_PATIENCE = 100
PLATFORM_STAGE_MAX_ROUNDS = 3000
# The learned feature the booster starts from (its init_score): see TierNichePrior.
BASELINE_FEATURE = "shrunk_log_er"
# Suffix of a cell's name in ``platform_rounds_`` for the shared trees its rows use.
SHARED_TREES = "(shared trees)"


class CellEarlyStopping:
    """LightGBM early stopping over one validation set per cell: boosting goes on while any
    cell still improves (stops when each has gone ``patience`` rounds without), and keeps
    each cell's best round (``best_rounds``, in the order of the validation sets)."""

    order = 30  # where LightGBM's own early stopping runs among the callbacks
    before_iteration = False

    def __init__(self, patience: int):
        self.patience = patience
        self.best_scores: list[float] = []
        self.best_rounds: list[int] = []

    def __call__(self, env: Any) -> None:
        import lightgbm as lgb

        scores = [float(result[2]) for result in env.evaluation_result_list]
        if not self.best_scores:
            self.best_scores, self.best_rounds = [np.inf] * len(scores), [0] * len(scores)
        for i, score in enumerate(scores):  # every metric here is a loss: lower is better
            if score < self.best_scores[i]:
                self.best_scores[i], self.best_rounds[i] = score, env.iteration + 1
        if all(env.iteration + 1 - best >= self.patience for best in self.best_rounds):
            raise lgb.callback.EarlyStopException(
                max(self.best_rounds) - 1, env.evaluation_result_list
            )


def default_feature_steps(
    seed: int = 0, prior_strength: float | None = None, n_topics: int = 12
) -> Pipeline:
    """The learned feature steps, in order (see :mod:`features.transformers`).

    The category vocabulary comes first: the prior and hashtag steps read ``category``.
    """
    return Pipeline(
        [
            ("vocabulary", CategoryVocabulary()),
            ("prior", TierNichePrior(strength=prior_strength)),
            ("hashtags", HashtagNiche(n_topics=n_topics, random_state=seed)),
            ("categories", CategoryEncoder()),
        ]
    ).set_output(transform="pandas")


# History bands of the conformal groups: (upper bound on earlier posts, label). A forecast from
# two posts misses by far more than one from fifty; one "history" group would give the long
# histories too wide an interval and the short ones too narrow a one.
HISTORY_BANDS = ((0, "cold"), (4, "short"), (14, "medium"), (np.inf, "long"))


# Cold starts are split by how long after the cutoff the follower count was read, in bands
# (upper bound in days, label). Scoring reads the counts now (the first band). A cold start's
# forecast comes from other creators' rates, over counts of other ages, and on Instagram misses by
# more when the count is fresh: out of fold, one interval for all covered 0.71 of the cold starts
# read within 60 days of their cutoff and 0.82 of those read a year later. A forecast from a
# history needs no split: its history and its label are divided by the same count.
FRESHNESS_BANDS = ((60.0, "fresh"), (np.inf, "stale"))


def platform_names(base: pd.DataFrame) -> np.ndarray:
    """Each row's platform as text (the default platform where the table has no column)."""
    if "platform" in base:
        return base["platform"].astype(str).to_numpy()
    return np.full(len(base), DEFAULT_PLATFORM)


def interval_group(base: pd.DataFrame) -> pd.Series:
    """Conformal group of each row: platform, tier and history band ("tiktok:micro/short"); for a
    cold start also how fresh its follower count is ("tiktok:micro/cold|fresh"), where known."""
    code, names = _group_codes(base)
    return pd.Series(np.asarray(names, dtype=object)[code], index=base.index, dtype=object)


def _group_codes(base: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """Each row's conformal group as a code into the returned group names (platform x tier x
    history band): text is made once per group, not once per row."""
    tier_code, tiers = value_codes(base["tier"])
    if "platform" in base:
        platform_code, platforms = value_codes(base["platform"])
    else:
        platform_code, platforms = np.zeros(len(base), dtype="int64"), [DEFAULT_PLATFORM]
    n_history = base["n_history_posts"].to_numpy(dtype="float64")
    band = np.searchsorted(np.array([upper for upper, _ in HISTORY_BANDS]), n_history, side="left")
    labels = [label for _, label in HISTORY_BANDS]
    names = [f"{p}:{t}/{b}" for p in platforms for t in tiers for b in labels]
    code = (platform_code * len(tiers) + tier_code) * len(labels) + band
    if "follower_count_age_days" in base:
        age = base["follower_count_age_days"].to_numpy(dtype="float64")
        uppers = np.array([upper for upper, _ in FRESHNESS_BANDS])
        n_fresh, n_plain = len(FRESHNESS_BANDS), len(names)
        fresh = np.searchsorted(uppers, age, side="left")
        # Each group once per freshness band, then the group without one (histories, and cold
        # starts of unknown count age).
        names = [f"{n}|{label}" for n in names for _, label in FRESHNESS_BANDS] + names
        split = ~np.isnan(age) & (band == 0)  # cold starts with a known count age
        code = np.where(split, n_fresh * code + fresh, n_fresh * n_plain + code)
    return code.astype("int64"), names


def _fallbacks(group: str) -> list[str]:
    """The coarser groups a small group falls back to, finest first (then all rows):
    "tiktok:micro/short" -> "micro/short", "micro/history", "micro"; a cold start falls back to
    the cold starts of every tier before its tier, whose history rows miss by less. A group with
    a freshness (cold starts) goes down that chain keeping it, then down the chain without it:
    "tiktok:micro/cold|fresh" -> "micro/cold|fresh", "cold|fresh", "micro|fresh",
    "tiktok:micro/cold", "micro/cold", "cold", "micro"."""
    group, bar, freshness = group.partition("|")
    if bar:
        kept = [f"{name}|{freshness}" for name in _fallbacks(group)]
        return [*kept, group, *_fallbacks(group)]
    tier_band = group.split(":", 1)[-1]
    tier, _, band = tier_band.partition("/")
    chain = [tier_band] if tier_band != group else []
    if band == "cold":
        chain.append("cold")
    elif band:
        chain.append(f"{tier}/history")
    return [*chain, tier]


def _weighted_quantiles(
    residuals: np.ndarray, weights: np.ndarray | None, probs: np.ndarray
) -> np.ndarray:
    """Quantiles of ``residuals`` at ``probs``, each row counted by its weight (None: equally)."""
    order = np.argsort(residuals, kind="stable")
    ranked = residuals[order]
    w = np.ones(len(ranked)) if weights is None else np.asarray(weights, dtype="float64")[order]
    # Midpoint plotting positions: the smallest value sits at half its weight, so 0 and 1 map
    # to the extremes and the grid is symmetric.
    position = (np.cumsum(w) - 0.5 * w) / w.sum()
    return np.interp(probs, position, ranked)


def _effective_size(weights: np.ndarray) -> float:
    """Kish's effective sample size of weighted rows."""
    return float(weights.sum() ** 2 / np.sum(weights**2)) if len(weights) else 0.0


# A creator's interval scales with the spread of its own history (SpreadScale): its MAD of log ER
# is shrunk towards the typical creator's by this many pseudo-posts (2 posts say little), and
# the exponent of the scale is chosen on the calibration rows from this grid (0: no scaling;
# above 1 where the shrinkage pulls spreads that do tell the misses too far together).
SPREAD_PSEUDO_POSTS = 10.0
SPREAD_EXPONENTS = tuple(np.round(np.linspace(0.0, 2.0, 21), 2))
# Histories of at least this many posts are ranked by spread when the exponent is chosen.
SPREAD_MIN_POSTS = 3
# 1.4826 x MAD estimates the standard deviation of normal data.
MAD_TO_SD = 1.4826


@dataclass
class SpreadScale:
    """How much wider than its group's a creator's interval is: (own spread / typical)^exponent.

    The own spread is the history's MAD of log ER (``log_er_mad``) shrunk towards the typical
    creator's by :data:`SPREAD_PSEUDO_POSTS`, and widened by sqrt(1 + 1/n) for a level known
    from n posts; cold starts scale by 1. A conformal group (platform x tier x history band)
    holds steady and erratic creators alike: unscaled, TikTok's 80 % interval covered 0.87 of the
    steadiest third's posts and 0.76 of the most erratic third's (grouped CV). The exponent is
    chosen by :func:`fit_spread_scale`; 0 is the unscaled interval.
    """

    typical: float = 1.0
    exponent: float = 0.0

    def __call__(self, base: pd.DataFrame) -> np.ndarray:
        if self.exponent == 0.0 or "log_er_mad" not in base:
            return np.ones(len(base))
        n = base["n_history_posts"].to_numpy(dtype="float64")
        mad = MAD_TO_SD * np.nan_to_num(base["log_er_mad"].to_numpy(dtype="float64"), nan=0.0)
        k, typical = SPREAD_PSEUDO_POSTS, self.typical
        with np.errstate(divide="ignore", invalid="ignore"):
            own = (n * mad**2 + k * typical**2) / (n + k) * (1.0 + 1.0 / np.maximum(n, 1.0))
            ratio = np.sqrt(own) / typical
        return np.where(n >= 1, ratio**self.exponent, 1.0)


def spread_thirds(n_history: np.ndarray, mad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(third, cuts): 0, 1, 2 for the steady, middle and erratic third of the rows with at least
    :data:`SPREAD_MIN_POSTS` history posts, ranked by their history's MAD of log ER, -1 for the
    others; and the thirds' upper bounds of MAD (empty when no row is ranked)."""
    n_history = np.asarray(n_history, dtype="float64")
    mad = np.asarray(mad, dtype="float64")
    ranked = (n_history >= SPREAD_MIN_POSTS) & ~np.isnan(mad)
    if not ranked.any():
        return np.full(len(mad), -1, dtype="int64"), np.zeros(0)
    cuts = np.quantile(mad[ranked], [1 / 3, 2 / 3, 1.0])
    third = np.searchsorted(cuts[:2], mad, side="left")
    return np.where(ranked, third, -1).astype("int64"), cuts


def _history_mad(base: pd.DataFrame) -> np.ndarray:
    """``log_er_mad`` of each row (NaN where the frame has none)."""
    if "log_er_mad" in base:
        return base["log_er_mad"].to_numpy(dtype="float64")
    return np.full(len(base), np.nan)


def fit_spread_scale(
    level: float,
    residuals: np.ndarray,
    base: pd.DataFrame,
    groups: pd.Series,
    weights: np.ndarray,
) -> SpreadScale:
    """The :class:`SpreadScale` whose exponent makes the interval hold equally for steady,
    middle and erratic creators on calibration rows it was not fitted on.

    ``base``, ``groups`` and ``weights`` belong to the ``residuals`` (one row each). The
    calibration creators are split in two halves; for each exponent of
    :data:`SPREAD_EXPONENTS`, the interval fitted on one half's scaled residuals is checked on
    the other's, both ways, and the exponent whose coverage of the three spread thirds lies
    closest to ``level`` (sum of squared misses) wins; ties go to the smaller exponent. With too
    few ranked creators it stays 0, the unscaled interval.
    """
    mad = _history_mad(base)
    third, _ = spread_thirds(base["n_history_posts"].to_numpy(), mad)
    ranked = third >= 0
    creator = base["influencer"].astype(str).to_numpy()
    if len(np.unique(creator[ranked])) < 2 * MIN_GROUP_SIZE:
        return SpreadScale()
    typical = float(np.median(MAD_TO_SD * mad[ranked]))
    if not typical > 0:
        return SpreadScale()
    half = (pd.util.hash_array(creator) % 2).astype(bool)
    groups = groups.reset_index(drop=True)
    best, best_loss = SpreadScale(), np.inf
    for exponent in SPREAD_EXPONENTS:
        scale = SpreadScale(typical, float(exponent))(base)
        scored = residuals / scale
        loss = 0.0
        for fit_on in (half, ~half):
            check = ~fit_on
            interval = ConformalInterval(level).fit(
                scored[fit_on], groups[fit_on].reset_index(drop=True), weights[fit_on]
            )
            low, high = interval.bounds(np.zeros(check.sum()), groups[check])
            inside = (scored[check] >= low) & (scored[check] <= high)
            for k in range(3):
                rows = third[check] == k
                if rows.any():
                    w = weights[check][rows]
                    loss += (float(np.sum(w * inside[rows]) / w.sum()) - level) ** 2
        if loss < best_loss - 1e-12:
            best, best_loss = SpreadScale(typical, float(exponent)), loss
    return best


@dataclass
class ConformalInterval:
    """Split-conformal interval on log ER, per group (Mondrian), from calibration residuals.

    Groups are platform x tier x history band; a group with fewer than ``MIN_GROUP_SIZE``
    calibration rows falls back along :func:`_fallbacks` (tier x band, tier x history, tier),
    then to all rows. The bounds are the empirical ``alpha/2`` and ``1 - alpha/2`` quantiles of
    ``actual - predicted`` on rows the model was not fitted on, with the finite-sample
    correction, so coverage holds per tier rather than only on average.

    With ``spread_`` (a :class:`SpreadScale`), the residuals are divided by each row's scale
    before the quantiles are taken, and the bounds multiplied by it: a steady creator's interval
    is narrower than its group's, an erratic one's wider. Intervals saved before it have none.
    """

    level: float = 0.8
    offsets_: dict[str, tuple[float, float]] = field(default_factory=dict)
    global_offsets_: tuple[float, float] = (float("nan"), float("nan"))
    group_sizes_: dict[str, int] = field(default_factory=dict)
    # Per group: residual quantiles at DISTRIBUTION_GRID (weighted like the bounds).
    distribution_: dict[str, np.ndarray] = field(default_factory=dict)
    global_distribution_: np.ndarray = field(default_factory=lambda: np.zeros(0))
    spread_: SpreadScale | None = None

    def row_scale(self, base: pd.DataFrame) -> np.ndarray:
        """Each row's :class:`SpreadScale` (1 without one)."""
        return np.ones(len(base)) if self.spread_ is None else self.spread_(base)

    def _quantiles(self, residuals: np.ndarray, weights: np.ndarray | None) -> tuple[float, float]:
        alpha = 1.0 - self.level
        if weights is None:
            n = len(residuals)
            lo_q = max(0.0, np.floor((n + 1) * alpha / 2) / n)
            hi_q = min(1.0, np.ceil((n + 1) * (1 - alpha / 2)) / n)
            return float(np.quantile(residuals, lo_q)), float(np.quantile(residuals, hi_q))
        # Weighted (each creator counts once): the same finite-sample correction, with the
        # effective number of independent rows in place of n.
        n_eff = _effective_size(weights)
        hi_q = min(1.0, (1 - alpha / 2) * (n_eff + 1) / n_eff)
        order = np.argsort(residuals, kind="stable")
        cumulative = np.cumsum(weights[order]) / weights.sum()
        ranked = residuals[order]

        def at(q: float) -> float:
            return float(ranked[min(int(np.searchsorted(cumulative, q)), len(ranked) - 1)])

        return at(1.0 - hi_q), at(hi_q)

    def fit(
        self, residuals: np.ndarray, groups: pd.Series, weights: np.ndarray | None = None
    ) -> ConformalInterval:
        """``weights``: per residual, e.g. so that each creator counts once (None: equal)."""
        residuals = np.asarray(residuals, dtype="float64")
        weights = None if weights is None else np.asarray(weights, dtype="float64")
        self.global_offsets_ = self._quantiles(residuals, weights)
        self.global_distribution_ = _weighted_quantiles(residuals, weights, DISTRIBUTION_GRID)
        self.offsets_, self.group_sizes_, self.distribution_ = {}, {}, {}
        fine = groups.astype(str).to_numpy()
        # Every level of the fallback chain gets its own quantiles, so a small group can fall
        # back to the nearest coarser one that has enough rows.
        members: dict[str, list[np.ndarray]] = {}
        for group, idx in pd.Series(np.arange(len(residuals))).groupby(fine):
            for name in (str(group), *_fallbacks(str(group))):
                members.setdefault(name, []).append(idx.to_numpy())
        for name, parts in members.items():
            rows = np.concatenate(parts)
            self.group_sizes_[name] = len(rows)
            # With weights (each creator once), a group's size is its effective number of
            # creators: fifty posts of two creators are two observations, not fifty.
            size = len(rows) if weights is None else _effective_size(weights[rows])
            if size >= MIN_GROUP_SIZE:
                w = None if weights is None else weights[rows]
                self.offsets_[name] = self._quantiles(residuals[rows], w)
                self.distribution_[name] = _weighted_quantiles(
                    residuals[rows], w, DISTRIBUTION_GRID
                )
        return self

    def distribution_for(self, group: str) -> np.ndarray:
        """Residual quantiles at :data:`DISTRIBUTION_GRID` of ``group`` (same fallbacks as the
        bounds)."""
        for name in (group, *_fallbacks(group)):
            if name in self.distribution_:
                return self.distribution_[name]
        return self.global_distribution_

    def quantiles_by_code(
        self,
        predicted: np.ndarray,
        codes: np.ndarray,
        groups: list[str],
        probs: np.ndarray,
        scale: np.ndarray | None = None,
    ) -> np.ndarray:
        """Predictive quantiles of log ER, (rows, probs): the prediction plus its group's
        residual quantiles, interpolated at ``probs`` (times each row's ``scale``)."""
        table = np.array(
            [np.interp(probs, DISTRIBUTION_GRID, self.distribution_for(g)) for g in groups]
        ).reshape(len(groups), len(probs))
        spread = table[codes] if scale is None else np.asarray(scale)[:, None] * table[codes]
        return np.asarray(predicted, dtype="float64")[:, None] + spread

    def prob_at_least_by_code(
        self,
        predicted: np.ndarray,
        codes: np.ndarray,
        groups: list[str],
        threshold: np.ndarray,
        scale: np.ndarray | None = None,
    ) -> np.ndarray:
        """P(log ER >= threshold) per row, from its group's residual distribution: the share
        of calibration misses at least ``threshold - predicted`` (a conformal predictive
        distribution, linear between the grid's quantiles)."""
        need = np.asarray(threshold, dtype="float64") - np.asarray(predicted, dtype="float64")
        if scale is not None:  # the miss needed, in the scaled residuals' units
            need = need / np.asarray(scale, dtype="float64")
        out = np.empty(len(need))
        for code, group in enumerate(groups):
            rows = codes == code
            if rows.any():
                grid = self.distribution_for(group)
                # np.interp needs increasing x: the quantiles are non-decreasing; ties keep the
                # first probability, so the CDF is read at its left limit (P(miss >= need)).
                below = np.interp(need[rows], grid, DISTRIBUTION_GRID, left=0.0, right=1.0)
                out[rows] = 1.0 - below
        return np.clip(out, 0.0, 1.0)

    def offsets_for(self, group: str) -> tuple[float, float]:
        for name in (group, *_fallbacks(group)):
            if name in self.offsets_:
                return self.offsets_[name]
        return self.global_offsets_

    def bounds(
        self, predicted: np.ndarray, groups: pd.Series, scale: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        codes, uniques = pd.factorize(groups.astype(str))
        return self.bounds_by_code(predicted, codes, list(uniques), scale)

    def bounds_by_code(
        self,
        predicted: np.ndarray,
        codes: np.ndarray,
        groups: list[str],
        scale: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`bounds` for rows given as codes into ``groups`` (the group names), each
        offset times the row's ``scale`` (None: 1)."""
        table = np.array([self.offsets_for(g) for g in groups], dtype="float64").reshape(-1, 2)
        low, high = table[codes, 0], table[codes, 1]
        if scale is not None:
            low, high = scale * low, scale * high
        return predicted + low, predicted + high


def creator_cell_weights(creator: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """1 / (rows of the same creator in the same interval group): each creator counts once
    within each group (Mondrian). A cold start is one row and a long history many; weighting
    them by the creator's rows overall would let creators with few posts set the cold-start
    quantiles."""
    cell = pd.Series(1.0, index=pd.MultiIndex.from_arrays([creator, groups]))
    return 1.0 / cell.groupby(level=[0, 1]).transform("size").to_numpy()


def calibrated_interval(
    level: float,
    predicted: np.ndarray,
    base: pd.DataFrame,
    y: np.ndarray,
    pairs: tuple[np.ndarray, np.ndarray] | None = None,
) -> ConformalInterval:
    """A :class:`ConformalInterval` fitted on calibration rows, each creator weighted once per
    group (see :meth:`EngagementModel.calibrate` for ``pairs``)."""
    y = np.asarray(y, dtype="float64")
    forecast, target = pairs if pairs is not None else (np.arange(len(y)), np.arange(len(y)))
    groups = interval_group(base).iloc[forecast].reset_index(drop=True)
    weight = creator_cell_weights(base["influencer"].to_numpy()[forecast], groups.to_numpy())
    residuals = y[target] - predicted[forecast]
    forecast_base = base.iloc[forecast].reset_index(drop=True)
    spread = fit_spread_scale(level, residuals, forecast_base, groups, weight)
    interval = ConformalInterval(level).fit(residuals / spread(forecast_base), groups, weight)
    interval.spread_ = spread
    return interval


class EngagementModel(BaseEstimator):
    """Learned feature steps + LightGBM booster + conformal interval, as one fitted object.

    A scikit-learn estimator: ``__init__`` stores its parameters as given, and everything
    learned is set by :meth:`fit` (names ending in ``_``), so ``get_params``, ``set_params``
    and :func:`sklearn.base.clone` work as for any estimator.

    Parameters
    ----------
    params
        LightGBM parameters (objective, learning rate, leaves, ...); None: LightGBM's defaults.
    interval_level
        Nominal coverage of the prediction interval (0.8 = 80 %).
    seed, prior_strength, n_topics
        Passed to the learned feature steps (``prior_strength`` None: learned from the data).

    Attributes
    ----------
    steps_, feature_names_, booster_, best_iteration_, baseline_mean_
        Set by :meth:`fit` (the Dask trainer sets them piece by piece).
    interval_
        Set by :meth:`calibrate`.
    metadata
        The model's record (engagement-rate definition, then what training and
        :func:`features.artifact.load_artifact` add); started afresh by every fit.

    The booster starts from ``shrunk_log_er``, the creator's own level shrunk towards its peers
    (LightGBM's ``init_score``), and its trees learn only the corrections the data support: with
    no trees the model is that calibrated persistence, and with few creators it cannot be pulled
    back to the global average the way a booster started from the mean is.
    """

    feature_names_: list[str]  # the booster's columns, in its order; set by fit_steps
    metadata: dict[str, Any]

    def __init__(
        self,
        params: dict[str, Any] | None = None,
        interval_level: float = 0.8,
        seed: int = 0,
        prior_strength: float | None = None,
        n_topics: int = 12,
    ):
        self.params = params
        self.interval_level = interval_level
        self.seed = seed
        self.prior_strength = prior_strength
        self.n_topics = n_topics

    # ------------------------------------------------------------------ fitting

    def fit_steps(self, base: pd.DataFrame) -> np.ndarray:
        """Fit the learned feature steps alone; returns the :meth:`booster_matrix` of ``base``.

        :meth:`fit` starts with this; the Dask trainer calls it on the driver, then fits the
        booster on the cluster (:mod:`training.distributed`).
        """
        self.metadata = {"engagement_rate_definition": ER_DEFINITION}
        self.steps_ = default_feature_steps(self.seed, self.prior_strength, self.n_topics)
        self.steps_.fit(base)
        steps = self.steps_.named_steps
        learned = steps["prior"].added_features() + steps["hashtags"].added_features()
        self.feature_names_ = list(NUMERIC_FEATURES) + learned + list(CATEGORICAL_FEATURES)
        return self.booster_matrix(base)

    def categorical_columns(self) -> list[int]:
        """Positions of the category-code columns in :meth:`booster_matrix` (LightGBM's
        ``categorical_feature``)."""
        return [self.feature_names_.index(name) for name in CATEGORICAL_FEATURES]

    def dataset(
        self,
        matrix: np.ndarray,
        y: np.ndarray,
        weight: np.ndarray | None = None,
        reference: Any = None,
        start: np.ndarray | None = None,
    ) -> Any:
        """A LightGBM dataset of a :meth:`booster_matrix`: the booster's column names, the
        category codes marked categorical, and the baseline as the starting score (or
        ``start``, e.g. the shared prediction a platform stage continues from)."""
        import lightgbm as lgb

        return lgb.Dataset(
            matrix,
            label=np.asarray(y, dtype="float64"),
            weight=weight,
            init_score=self.baseline_log(matrix) if start is None else start,
            feature_name=self.feature_names_,
            categorical_feature=self.categorical_columns(),
            reference=reference,
            free_raw_data=True,
        )

    def fit(
        self,
        base: pd.DataFrame,
        y: np.ndarray,
        *,
        sample_weight: np.ndarray | None = None,
        valid: tuple[pd.DataFrame, np.ndarray] | None = None,
        valid_weight: np.ndarray | None = None,
        num_boost_round: int = 2000,
        early_stopping_rounds: int = 100,
        platform_rounds: dict[str, int] | None = None,
    ) -> EngagementModel:
        """Fit the feature steps and the booster; early stopping on ``valid`` when given.

        ``sample_weight`` (and ``valid_weight``) weight the rows, e.g. so that each creator
        counts once whatever its number of targets.

        Trained on several platforms, the shared trees grow while any cell (a platform's cold
        starts, or its creators with a history) still gains on ``valid``, and each cell's rows
        use them up to that cell's best round (:meth:`_set_shared_rounds`). Each platform also
        gets a stage of trees (see :meth:`_fit_platform_stages`) with as many rounds as early
        stopping on ``valid`` finds. Both are in ``platform_rounds_``; ``platform_rounds``
        gives them by name instead (the refit on all rows after such a probe, as the trainer
        does it). With neither, every row uses every shared tree and there is no stage.
        """
        import lightgbm as lgb

        X = self.fit_steps(base)
        # Several platforms: the shared trees are early-stopped per cell (platform x has a
        # history), each cell's best round kept (see _set_shared_rounds).
        cells: list[tuple[float, bool]] = []
        stopping: CellEarlyStopping | None = None
        self.baseline_mean_ = float(np.average(self.baseline_log(X), weights=sample_weight))
        train_set = self.dataset(X, y, sample_weight)
        callbacks: list[Any] = []
        valid_sets = []
        held: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        if valid is not None:
            Xv = self.booster_matrix(valid[0])
            yv = np.asarray(valid[1], dtype="float64")
            wv = np.ones(len(yv)) if valid_weight is None else np.asarray(valid_weight, "float64")
            held = (Xv, yv, wv)
            cells = [key for key in self._cells(X) if self._stage_rows(Xv, key).any()]
            if cells:
                valid_sets = [
                    self.dataset(Xv[rows], yv[rows], wv[rows], reference=train_set)
                    for rows in (self._stage_rows(Xv, key) for key in cells)
                ]
                stopping = CellEarlyStopping(early_stopping_rounds)
                callbacks.append(stopping)
            else:
                valid_sets = [self.dataset(Xv, valid[1], valid_weight, reference=train_set)]
                callbacks.append(lgb.early_stopping(early_stopping_rounds, verbose=False))
        params = {
            "verbosity": -1,
            "seed": self.seed,
            "deterministic": True,
            "force_col_wise": True,
            **(self.params or {}),
        }
        # LightGBM refuses 0 rounds; a model of 0 rounds (the baseline alone) keeps one
        # tree it never uses, so that the booster still records the columns and categories.
        self.booster_ = lgb.train(
            params,
            train_set,
            num_boost_round=max(num_boost_round, 1),
            valid_sets=valid_sets,
            callbacks=callbacks,
        )
        self.best_iteration_ = (
            int(self.booster_.best_iteration or self.booster_.current_iteration())
            if num_boost_round > 0
            else 0
        )
        self.platform_boosters_: dict[float | tuple[float, bool], tuple[Any, int]] = {}
        self.platform_rounds_: dict[str, int] = {}
        # Per cell (platform, has a history): how many of the shared trees its rows use.
        self.shared_rounds_: dict[tuple[float, bool], int] = {}
        if num_boost_round > 0 and (held is not None or platform_rounds):
            best = dict(zip(cells, stopping.best_rounds, strict=True)) if stopping else None
            self._set_shared_rounds(X, platform_names(base), best, platform_rounds)
            self._fit_platform_stages(
                X, np.asarray(y), sample_weight, platform_names(base), params, held, platform_rounds
            )
        return self

    def _cells(self, X: np.ndarray) -> list[tuple[float, bool]]:
        """(platform code, has a history) of every cell of ``X``; none for a single platform."""
        column = self.feature_names_.index("platform")
        codes = np.unique(X[np.isfinite(X[:, column]), column])
        if len(codes) < 2:
            return []
        return [(float(code), has_history) for code in codes for has_history in (False, True)]

    def _set_shared_rounds(
        self,
        X: np.ndarray,
        platforms: np.ndarray,
        best: dict[tuple[float, bool], int] | None,
        rounds: dict[str, int] | None,
    ) -> None:
        """How many shared trees each cell's rows use: as many as helped that cell's validation
        creators (``best``, each cell's best round there), or as ``rounds`` gives by name
        ("tiktok with history (shared trees)"); at most the trees there are.

        The shared trees follow the platform with the most weight in a region. A cell they stop
        helping (TikTok's histories, while Instagram's cold starts still gain) would otherwise
        keep the trees that hurt it: a stage can only add trees, not take them back.
        """
        for key in self._cells(X):
            rows = self._stage_rows(X, key)
            if not rows.any():
                continue
            name = self._cell_name(str(platforms[np.flatnonzero(rows)[0]]), key[1])
            name = f"{name} {SHARED_TREES}"
            if best is not None:
                n = best.get(key, self.best_iteration_)
            else:
                n = int((rounds or {}).get(name, self.best_iteration_))
            n = max(1, min(int(n), self.best_iteration_))
            self.shared_rounds_[key] = n
            self.platform_rounds_[name] = n

    def _stage_rows(self, X: np.ndarray, key: float | tuple[float, bool]) -> np.ndarray:
        """Rows of ``X`` a stage applies to: a platform code (all of its rows), or (platform
        code, has a history) for its cold starts or its creators with a history."""
        platform = X[:, self.feature_names_.index("platform")]
        if not isinstance(key, tuple):
            return platform == key
        code, has_history = key
        return (platform == code) & (
            (X[:, self.feature_names_.index("n_history_posts")] > 0) == has_history
        )

    def _fit_platform_stages(
        self,
        X: np.ndarray,
        y: np.ndarray,
        weight: np.ndarray | None,
        platforms: np.ndarray,
        params: dict[str, Any],
        held: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
        rounds: dict[str, int] | None,
    ) -> None:
        """Per platform, trees that continue from the shared model on that platform's rows;
        then, within each platform, trees for its cold starts and for its creators with a
        history apart, continuing from there.

        Trained on several platforms, the shared trees follow whichever platform dominates a
        region (Instagram's many cold starts set the cold-start trees, and TikTok's own cold
        starts did worse than with a model of TikTok alone); a platform's cold starts and its
        long histories are predicted from different features, so one stage for both follows
        the histories. Every stage's rounds are found by early stopping on ``held`` (the
        validation creators, unseen by the shared trees too, so a stage learns what the model
        before it gets wrong on new creators, not on its own training rows), or given by
        ``rounds`` by name (``"tiktok"``, ``"tiktok cold start"``, ``"tiktok with history"``).
        One platform: no stage.
        """
        import lightgbm as lgb

        column = self.feature_names_.index("platform")
        codes = np.unique(X[np.isfinite(X[:, column]), column])
        if len(codes) < 2:
            return
        y = np.asarray(y, dtype="float64")
        w = np.ones(len(y)) if weight is None else np.asarray(weight, dtype="float64")
        keys: list[float | tuple[float, bool]] = [float(code) for code in codes]
        keys += [(float(code), has_history) for code in codes for has_history in (False, True)]
        for key in keys:
            rows = self._stage_rows(X, key)
            if not rows.any():
                continue
            platform = str(platforms[np.flatnonzero(rows)[0]])
            name = platform if not isinstance(key, tuple) else self._cell_name(platform, key[1])
            # Each stage continues from the shared trees and the stages fitted before it.
            start = self.baseline_log(X[rows]) + self._trees(X[rows])
            train = self.dataset(X[rows], y[rows], w[rows], start=start)
            if held is None:
                n = int((rounds or {}).get(name, 0))
                stage = lgb.train(params, train, n) if n >= 1 else None
            else:
                Xv, yv, wv = held
                rows_v = self._stage_rows(Xv, key)
                if not rows_v.any():
                    continue
                start_v = self.baseline_log(Xv[rows_v]) + self._trees(Xv[rows_v])
                valid = self.dataset(Xv[rows_v], yv[rows_v], wv[rows_v], train, start=start_v)
                stage = lgb.train(
                    params,
                    train,
                    num_boost_round=PLATFORM_STAGE_MAX_ROUNDS,
                    valid_sets=[valid],
                    callbacks=[lgb.early_stopping(PLATFORM_STAGE_PATIENCE, verbose=False)],
                )
                n = int(stage.best_iteration or 0)
            self.platform_rounds_[name] = n
            if stage is not None and n >= 1:
                self.platform_boosters_[key] = (stage, n)

    @staticmethod
    def _cell_name(platform: str, has_history: bool) -> str:
        return f"{platform} {'with history' if has_history else 'cold start'}"

    def baseline_log(self, matrix: np.ndarray) -> np.ndarray:
        """The booster's starting point per row: ``shrunk_log_er`` of a :meth:`booster_matrix`."""
        # A contiguous copy, not a strided view of the column (LightGBM wants its init_score so).
        return np.array(matrix[:, self.feature_names_.index(BASELINE_FEATURE)], dtype="float64")

    def _trees(self, matrix: np.ndarray, **kwargs: Any) -> np.ndarray:
        """What the trees add to the baseline: the shared trees, plus the row's platform stages
        where there are some (its platform's, then its cold-start or history stage; see
        :meth:`_fit_platform_stages`; SHAP values add up too). Nothing for a row of a platform
        training never saw (:meth:`unseen_platform`)."""
        out = self._shared_trees(matrix, **kwargs)
        stages = getattr(self, "platform_boosters_", {})  # models saved before have none
        if stages:
            for key, (booster, rounds) in stages.items():
                rows = self._stage_rows(matrix, key)
                if rows.any():
                    out[rows] += booster.predict(matrix[rows], num_iteration=rounds, **kwargs)
        unseen = self.unseen_platform(matrix)
        if unseen.any():
            out[unseen] = 0.0
        return out

    def unseen_platform(self, matrix: np.ndarray) -> np.ndarray:
        """True for each row of a :meth:`booster_matrix` whose platform training never saw (the
        encoder gives it no code).

        Such a row is forecast from its starting point alone, the creator's own level shrunk
        towards its peers: the trees' corrections are learned on other platforms' creators and
        do not carry over (across the shared sets they lost to persistence where the starting
        point alone did not: README, "A platform the model never saw")."""
        return np.isnan(matrix[:, self.feature_names_.index("platform")])

    def peer_level(self, base: pd.DataFrame) -> np.ndarray:
        """Each row's ``prior_log_er``: the mean log ER its peers (platform, tier and niche) had
        in training, the level the starting point shrinks the creator's own towards."""
        steps = self.steps_.named_steps
        mapped = steps["vocabulary"].added_columns(base)
        return steps["prior"].prior(base.assign(**mapped) if mapped else base)

    def _shared_trees(self, matrix: np.ndarray, **kwargs: Any) -> np.ndarray:
        """What the shared trees add to the baseline (nothing without trees): each cell's rows
        use its own number of them (:meth:`_set_shared_rounds`), other rows all of them."""
        if self.best_iteration_ == 0:  # LightGBM would read 0 as "every tree"
            width = len(self.feature_names_) + 1 if kwargs.get("pred_contrib") else None
            return np.zeros((len(matrix), width) if width else len(matrix))
        out = np.asarray(
            self.booster_.predict(matrix, num_iteration=self.best_iteration_, **kwargs),
            dtype="float64",
        )
        for key, rounds in getattr(self, "shared_rounds_", {}).items():  # none before them
            rows = self._stage_rows(matrix, key)
            if rounds < self.best_iteration_ and rows.any():
                out[rows] = self.booster_.predict(matrix[rows], num_iteration=rounds, **kwargs)
        return out

    def calibrate(
        self,
        base: pd.DataFrame,
        y: np.ndarray,
        pairs: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> EngagementModel:
        """Learn the interval from rows the booster was not fitted on.

        ``pairs`` (forecast rows, target rows): score each row's forecast against other rows'
        labels too, e.g. the same creator's later posts, so that the interval holds for posts
        further ahead than the next one; default each row against its own label.
        """
        self.interval_ = calibrated_interval(
            self.interval_level, self.predict_log(base), base, y, pairs
        )
        return self

    # ------------------------------------------------------------------ predicting

    def booster_matrix(self, base: pd.DataFrame) -> np.ndarray:
        """The booster's input as one float matrix, in its column order: the learned steps'
        columns and the categories as the encoder's codes (unseen: missing).

        The one path from features to the booster: :meth:`fit` trains on it and every
        prediction reads it, so LightGBM never sees pandas categories. It is built straight from
        the steps' column functions (``added_columns``, ``codes``), without the frame each step
        of the scikit-learn pipeline would copy and extend.

        Models saved before the booster was fitted on this matrix were fitted on the pipeline's
        frame, whose categories were the encoder's own (``CategoryEncoder.transform``): their
        booster's ``pandas_categorical`` lists those same categories, so it reads these codes
        unchanged (a test pins it).
        """
        steps = self.steps_.named_steps
        mapped = steps["vocabulary"].added_columns(base)
        base = base.assign(**mapped) if mapped else base  # no copy when nothing is mapped
        learned = {**steps["prior"].added_columns(base), **steps["hashtags"].added_columns(base)}
        codes = steps["categories"].codes(base)
        names = self.feature_names_
        position = {name: j for j, name in enumerate(names)}
        matrix = np.empty((len(base), len(names)), dtype="float64")
        numeric = [name for name in names if name not in learned and name not in codes]
        if numeric:  # one conversion for the whole numeric block
            matrix[:, [position[n] for n in numeric]] = base[numeric].to_numpy(
                dtype="float64", na_value=np.nan
            )
        for name, values in learned.items():
            matrix[:, position[name]] = values
        for name, code in codes.items():
            matrix[:, position[name]] = np.where(code >= 0, code, np.nan)
        return matrix

    def model_matrix(self, base: pd.DataFrame) -> pd.DataFrame:
        """:meth:`booster_matrix` as a frame with the booster's column names (for reading it,
        and for the Dask trainer's partitions)."""
        return pd.DataFrame(
            self.booster_matrix(base), columns=self.feature_names_, index=base.index
        )

    def predict_log(self, base: pd.DataFrame, matrix: np.ndarray | None = None) -> np.ndarray:
        """Predicted log ER (see :mod:`features.engagement`) from precomputed base features.

        ``matrix``: the rows' :meth:`booster_matrix`, when the caller has it already.
        """
        matrix = self.booster_matrix(base) if matrix is None else matrix
        return self.baseline_log(matrix) + self._trees(matrix)

    def predict_log_interval(
        self, base: pd.DataFrame, predicted: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        predicted = self.predict_log(base) if predicted is None else predicted
        return self.interval_.bounds_by_code(
            predicted, *_group_codes(base), self.interval_.row_scale(base)
        )

    def predict_log_quantiles(
        self, base: pd.DataFrame, probs: np.ndarray, predicted: np.ndarray | None = None
    ) -> np.ndarray:
        """Quantiles of each row's predictive distribution of log ER, shape (rows, probs)."""
        predicted = self.predict_log(base) if predicted is None else predicted
        return self.interval_.quantiles_by_code(
            predicted,
            *_group_codes(base),
            np.asarray(probs, dtype="float64"),
            self.interval_.row_scale(base),
        )

    def prob_at_least(
        self, base: pd.DataFrame, log_threshold: np.ndarray, predicted: np.ndarray | None = None
    ) -> np.ndarray:
        """P(log ER >= ``log_threshold``) per row, from the calibrated predictive distribution
        (the conformal residuals of the row's group)."""
        predicted = self.predict_log(base) if predicted is None else predicted
        return self.interval_.prob_at_least_by_code(
            predicted, *_group_codes(base), log_threshold, self.interval_.row_scale(base)
        )

    def contributions(self, base: pd.DataFrame, matrix: np.ndarray | None = None) -> pd.DataFrame:
        """Per-row contributions to predicted log ER: the trees' SHAP values (LightGBM's own
        ``pred_contrib``) plus the starting point, whose departure from its training average is
        credited to ``shrunk_log_er`` (the creator's own record) and whose average joins ``bias``.
        Each row adds up to :meth:`predict_log`."""
        matrix = self.booster_matrix(base) if matrix is None else matrix
        values = self._trees(matrix, pred_contrib=True)
        start = self.baseline_log(matrix)
        values[:, self.feature_names_.index(BASELINE_FEATURE)] += start - self.baseline_mean_
        values[:, -1] += self.baseline_mean_
        return pd.DataFrame(values, columns=[*self.feature_names_, "bias"], index=base.index)

    def predict_features(
        self, base: pd.DataFrame, matrix: np.ndarray | None = None
    ) -> pd.DataFrame:
        """Point prediction and interval, as engagement rates, from precomputed base features."""
        predicted = self.predict_log(base, matrix)
        lo, hi = self.predict_log_interval(base, predicted)
        followers = np.exp(base["log_followers"].to_numpy(dtype="float64"))
        # The niche the model used: the category on its fitted vocabulary.
        mapped = self.steps_.named_steps["vocabulary"].added_columns(base)
        category = (
            pd.array(mapped["category"], dtype="str")
            if mapped
            else base["category"].astype(str).array
        )
        return pd.DataFrame(
            {
                "influencer": base["influencer"].array,
                "predicted_log_er": predicted,
                "predicted_er": er_from_log(predicted, followers),
                "er_low": er_from_log(lo, followers),
                "er_high": er_from_log(hi, followers),
                "has_history": base["n_history_posts"].to_numpy() > 0,
                # Text columns stay as they are (arrow text, no copy) unless they are not text yet.
                "tier": base["tier"].astype(str).array,
                "category": category,
                "followers": followers,
            },
            index=base.index,
        )

    def predict(
        self,
        profiles: pd.DataFrame,
        posts: pd.DataFrame | None,
        as_of: pd.Timestamp | pd.Series | None = None,
    ) -> pd.DataFrame:
        """Validate raw tables in the data contract, build features as of ``as_of`` and predict."""
        data = validate(profiles, posts)
        base = compute_features(data.profiles, data.posts, examples_at(data.profiles, as_of))
        return self.predict_features(base)
