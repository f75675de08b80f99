"""The forward protocol: what a planner does with a creator the model never saw.

Creators with at least ``MIN_POSTS`` posts are split by creator, seeded: ``train_share`` of them
(60 %) train a model, the rest are evaluated. For each evaluation creator the first 70 % of its
posts (in time) are its history; it is scored as of its first later post, and the label is the
median engagement rate of its later posts (the last 30 %). Persistence, the number analytics
dashboards show, is the median engagement rate of the history.

Rates are clipped at ``RATE_FLOOR`` before the log, for the label, persistence and the model
alike, so a creator whose later posts got nothing does not dominate the error.

Reported: MAE of log ER, Spearman, a paired bootstrap 90 % interval of the MAE gain
(persistence MAE - model MAE, resampling creators), and the coverage of the model's 80 % interval.
The headline coverage is against each later post that was at least ``MIN_POST_AGE`` old at the
scrape: what the interval promises is a post's settled engagement, and younger posts are left out
of training labels and histories for the same reason. Also reported: its 90 % bootstrap interval,
the coverage against every later post (young ones included) and against the later posts' median
(a narrower target: it over-covers by design).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from features.aggregate import MIN_POST_AGE, compute_features
from features.contract import ValidatedData
from features.engagement import er_from_log, interactions, log_er
from training.evaluation import fit_model
from training.examples import post_examples, post_scrape_times, scrape_times

MIN_POSTS = 6
# Fewer evaluated creators than this make no comparison worth printing.
MIN_CREATORS = 10
TRAIN_SHARE = 0.6
HISTORY_SHARE = 0.7
RATE_FLOOR = 1e-4
BOOTSTRAP_SAMPLES = 2000
# The headline coverage of the protocol (see the module's docstring), as the checks read it.
COVERAGE_KEY_FORWARD = "coverage_80_mature_posts"


@dataclass
class ForwardSplit:
    """Which creators train the model and which are evaluated (no one on both sides)."""

    train: np.ndarray  # influencer keys whose posts may all be used for training
    evaluate: np.ndarray  # influencer keys evaluated forward


@dataclass
class ForwardSet:
    """Evaluation creators as of their cutoff, with the later posts that make the label."""

    base: pd.DataFrame  # compute_features output, one row per evaluation creator
    label: np.ndarray  # log of the later posts' median rate (clipped)
    persistence: np.ndarray  # log of the history's median rate (clipped)
    later_log_er: pd.DataFrame  # every later post: example number, log ER (model scale), mature


def forward_split(
    posts: pd.DataFrame, seed: int, *, train_share: float = TRAIN_SHARE, min_posts: int = MIN_POSTS
) -> ForwardSplit:
    """Creators with ``min_posts`` or more posts, split ``train_share`` / rest by creator.

    Creators with fewer posts are never evaluated; they join the training side, since they
    still teach the model (cold starts and short histories).
    """
    n_posts = posts.groupby("influencer", sort=True, observed=True).size()
    long = long_creators(posts, min_posts)
    rng = np.random.default_rng(seed)
    shuffled = long[rng.permutation(len(long))]
    n_train = int(round(len(long) * train_share))
    evaluate = np.sort(shuffled[n_train:])
    train = np.setdiff1d(np.asarray(n_posts.index, dtype=object), evaluate)
    return ForwardSplit(train=train, evaluate=evaluate)


def long_creators(posts: pd.DataFrame, min_posts: int = MIN_POSTS) -> np.ndarray:
    """The creators with ``min_posts`` or more posts, sorted: those the protocol can evaluate."""
    n_posts = posts.groupby("influencer", sort=True, observed=True).size()
    return np.asarray(n_posts.index[n_posts >= min_posts], dtype=object)


def _too_few(n_creators: int) -> dict[str, Any] | None:
    """The report of a protocol that cannot run on so few creators (None if it can)."""
    if n_creators >= MIN_CREATORS:
        return None
    return {
        "n_creators": int(n_creators),
        "skipped": f"fewer than {MIN_CREATORS} creators with {MIN_POSTS}+ posts",
    }


def _rate_log(rate: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(np.asarray(rate, dtype="float64"), RATE_FLOOR))


def forward_set(data: ValidatedData, creators: np.ndarray) -> ForwardSet:
    """Each creator's first 70 % of posts as history, scored at its first later post."""
    posts = data.posts[data.posts["influencer"].isin(creators)]
    ordered = posts.sort_values(["influencer", "posted_at", "post_id"], kind="stable")
    position = ordered.groupby("influencer", sort=False).cumcount().to_numpy()
    count = ordered.groupby("influencer", sort=False)["post_id"].transform("size").to_numpy()
    n_history = np.maximum(np.floor(count * HISTORY_SHARE), 1).astype("int64")
    later = ordered[position >= n_history]
    first_later = later.groupby("influencer", sort=True)["posted_at"].min()
    scraped = post_scrape_times(data.profiles, later, scrape_times(data.profiles, data.posts))
    # The follower counts were read at the scrape (as in training's examples); the history is
    # the protocol's, young posts included.
    read_at = scraped.groupby(later["influencer"].to_numpy(), sort=True).first()
    examples = pd.DataFrame(
        {
            "influencer": first_later.index.to_numpy(),
            "cutoff": first_later.array,
            "followers_read_at": read_at.reindex(first_later.index).array,
        }
    )
    base = compute_features(data.profiles, posts, examples)
    example_of = pd.Series(np.arange(len(examples)), index=examples["influencer"])
    followers = data.profiles.set_index("influencer")["followers"]

    def rates(frame: pd.DataFrame) -> pd.DataFrame:
        f = frame["influencer"].map(followers).to_numpy(dtype="float64")
        n = interactions(frame).to_numpy()
        return pd.DataFrame(
            {
                "example": frame["influencer"].map(example_of).to_numpy(),
                "rate": n / f,
                "log_er": log_er(n, f),
            }
        )

    later_rates = rates(later)
    # Later posts still young at the scrape are collecting engagement: coverage is reported
    # with and without them.
    later_rates["mature"] = (later["posted_at"] <= scraped - MIN_POST_AGE).to_numpy()
    # The history is exactly what the features saw: posts strictly before the cutoff.
    history = posts[posts["posted_at"] < posts["influencer"].map(first_later)]
    history_rates = rates(history)
    label = later_rates.groupby("example")["rate"].median().reindex(range(len(examples)))
    persistence = history_rates.groupby("example")["rate"].median().reindex(range(len(examples)))
    return ForwardSet(
        base=base,
        label=_rate_log(label.to_numpy()),
        persistence=_rate_log(persistence.to_numpy()),
        later_log_er=later_rates[["example", "log_er", "mature"]],
    )


def _model_rate_log(predicted_log: np.ndarray, base: pd.DataFrame) -> np.ndarray:
    """The model's log ER prediction on the protocol's scale (rate, clipped, logged)."""
    followers = np.exp(base["log_followers"].to_numpy(dtype="float64"))
    return _rate_log(er_from_log(predicted_log, followers))


def paired_bootstrap(gain: np.ndarray, seed: int, samples: int = BOOTSTRAP_SAMPLES) -> list[float]:
    """90 % interval of the mean of ``gain`` (one value per creator), resampling creators."""
    if len(gain) == 0:
        return [float("nan"), float("nan")]
    rng = np.random.default_rng(seed)
    means = gain[rng.integers(0, len(gain), size=(samples, len(gain)))].mean(axis=1)
    return [float(np.quantile(means, 0.05)), float(np.quantile(means, 0.95))]


def forward_report(
    predict: Callable[[pd.DataFrame], tuple[np.ndarray, np.ndarray, np.ndarray]],
    test: ForwardSet,
    seed: int,
) -> dict[str, Any]:
    """Model beside persistence on a :class:`ForwardSet`.

    ``predict(base)`` returns predicted log ER and the interval's low and high (model scale).
    """
    pred, low, high = predict(test.base)
    model = _model_rate_log(pred, test.base)
    out: dict[str, Any] = {"n_creators": int(len(test.label))}
    for name, values in (("model", model), ("persistence", test.persistence)):
        rho = spearmanr(test.label, values).statistic if len(values) > 2 else float("nan")
        out[name] = {
            "mae_log_er": float(np.mean(np.abs(values - test.label))),
            "spearman": float(rho),
        }
    gain = np.abs(test.persistence - test.label) - np.abs(model - test.label)
    out["mae_gain"] = float(gain.mean()) if len(gain) else float("nan")
    out["mae_gain_90ci"] = paired_bootstrap(gain, seed)
    # Coverage per later post, each creator weighted equally (creators differ in post counts).
    ex = test.later_log_er["example"].to_numpy()
    y = test.later_log_er["log_er"].to_numpy()
    inside = ((y >= low[ex]) & (y <= high[ex])).astype("float64")
    per_creator = pd.Series(inside).groupby(ex).mean()
    out["model"]["coverage_80_posts"] = (
        float(per_creator.mean()) if len(per_creator) else float("nan")
    )
    mature = test.later_log_er["mature"].to_numpy(dtype=bool)
    per_creator_mature = pd.Series(inside[mature]).groupby(ex[mature]).mean()
    out["model"]["coverage_80_mature_posts"] = (
        float(per_creator_mature.mean()) if len(per_creator_mature) else float("nan")
    )
    # With a few dozen creators the coverage itself is uncertain: its 90 % interval
    # (resampling creators) says whether a miss of the nominal level means anything.
    out["model"]["coverage_80_mature_posts_90ci"] = paired_bootstrap(
        per_creator_mature.to_numpy(), seed
    )
    out["model"]["coverage_80_median"] = (
        float(np.mean((test.label >= low) & (test.label <= high))) if len(low) else float("nan")
    )
    out["model"]["interval_width_80"] = float(np.median(high - low)) if len(low) else float("nan")
    tier = test.base["tier"].astype(str).to_numpy()
    out["model"]["by_tier"] = {
        str(t): {
            "coverage_80_posts": float(per_creator[np.unique(ex[tier[ex] == t])].mean()),
            "coverage_80_mature_posts": float(
                per_creator_mature[np.unique(ex[mature & (tier[ex] == t)])].mean()
            ),
            "n": int((tier == t).sum()),
        }
        for t in pd.unique(tier)
    }
    return out


def creator_errors(model: Any, test: ForwardSet) -> pd.Series:
    """Each evaluated creator's absolute error of log ER on the protocol's scale, by
    influencer: for paired comparisons of two models on the same creators."""
    predicted = _model_rate_log(model.predict_log(test.base), test.base)
    return pd.Series(
        np.abs(predicted - test.label), index=test.base["influencer"].to_numpy(), name="error"
    )


def subset(data: ValidatedData, creators: np.ndarray) -> ValidatedData:
    """The validated rows of ``creators`` only (profiles and posts)."""
    keep_profiles = data.profiles["influencer"].isin(creators).to_numpy()
    keep_posts = data.posts["influencer"].isin(creators).to_numpy()
    return ValidatedData(
        data.profiles[keep_profiles].reset_index(drop=True),
        data.posts[keep_posts].reset_index(drop=True),
        data.report,
    )


def forward_evaluation(
    data: ValidatedData,
    config: Any,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """The whole protocol on validated data: split, train on the training creators (as
    ``engage train`` would), evaluate the rest beside persistence."""
    split = forward_split(data.posts, config.seed)
    skipped = _too_few(len(split.evaluate))
    if skipped:
        return skipped
    train = subset(data, split.train)
    examples = post_examples(train.profiles, train.posts, config.targets_per_influencer)
    progress(
        f"forward protocol: fitting on {len(split.train)} creators ({len(examples)} examples), "
        f"forecasting {len(split.evaluate)} others from their first {HISTORY_SHARE:.0%} of posts"
    )
    model = fit_model(examples, config, progress=progress)
    return evaluate_forward(model, data, split.evaluate, config.seed)


def evaluate_forward(
    model: Any, data: ValidatedData, creators: np.ndarray, seed: int
) -> dict[str, Any]:
    """A fitted model (training's or a saved one) on the forward protocol's ``creators``."""

    def predict(base: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        predicted = model.predict_log(base)
        low, high = model.predict_log_interval(base, predicted)
        return predicted, low, high

    return forward_report(predict, forward_set(data, creators), seed)


def evaluate_forward_all(model: Any, data: ValidatedData, seed: int) -> dict[str, Any]:
    """A saved model on the forward protocol, every creator with ``MIN_POSTS`` posts evaluated
    (``engage evaluate``: the data are the model's unseen creators)."""
    creators = long_creators(data.posts)
    return _too_few(len(creators)) or evaluate_forward(model, data, creators, seed)
