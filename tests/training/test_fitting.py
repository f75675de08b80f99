"""The model ``training.fitting.new_model`` builds: it starts from the creator's own level."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.pipeline import BASELINE_FEATURE
from tests.training_fixtures import creators_with_levels
from training.config import TrainConfig
from training.examples import post_examples
from training.fitting import creator_folds, influencer_holdout, new_model


def test_zero_boosting_rounds_is_the_baseline():
    data = creators_with_levels(60)
    examples = post_examples(data.profiles, data.posts)
    config = TrainConfig(n_topics=2)
    model = new_model(config).fit(
        examples.base, examples.label, sample_weight=examples.weight, num_boost_round=0
    )
    matrix = model.model_matrix(examples.base)
    np.testing.assert_allclose(
        model.predict_log(examples.base), matrix[BASELINE_FEATURE].to_numpy()
    )
    # the contributions credit the whole prediction to the baseline and the bias
    contributions = model.contributions(examples.base)
    np.testing.assert_allclose(contributions.sum(axis=1), model.predict_log(examples.base))
    others = contributions.drop(columns=[BASELINE_FEATURE, "bias"])
    assert (others == 0).all().all()


def test_trees_add_to_the_baseline_and_contributions_add_up():
    data = creators_with_levels(60)
    examples = post_examples(data.profiles, data.posts)
    model = new_model(TrainConfig(n_topics=2)).fit(
        examples.base, examples.label, sample_weight=examples.weight, num_boost_round=30
    )
    predicted = model.predict_log(examples.base)
    np.testing.assert_allclose(model.contributions(examples.base).sum(axis=1), predicted, atol=1e-9)
    start = model.model_matrix(examples.base)[BASELINE_FEATURE].to_numpy()
    assert not np.allclose(predicted, start)  # the trees do move it


def test_shrinkage_is_learned_from_the_data():
    """Noisy creators around similar levels lean on peers more than consistent, distinct ones."""
    consistent = creators_with_levels(60, seed=1)
    strength_consistent = _strength(post_examples(consistent.profiles, consistent.posts))
    noisy = creators_with_levels(60, seed=1)
    rng = np.random.default_rng(5)
    noise = np.exp(rng.normal(0, 1.5, len(noisy.posts)))
    noisy_posts = noisy.posts.assign(likes=(noisy.posts["likes"] * noise).round())
    strength_noisy = _strength(post_examples(noisy.profiles, noisy_posts))
    assert strength_noisy > 3 * strength_consistent


def _strength(examples) -> float:
    model = new_model(TrainConfig(n_topics=2))
    model.fit_steps(examples.base)
    return model.steps_.named_steps["prior"].strength_["*"]


def _two_platform_rows() -> pd.DataFrame:
    """Rows of 40 Instagram and 15 TikTok creators, 1-4 rows each, interleaved."""
    rng = np.random.default_rng(3)
    rows = [
        (f"{platform}:c{i}", platform)
        for platform, n in (("instagram", 40), ("tiktok", 15))
        for i in range(n)
        for _ in range(int(rng.integers(1, 5)))
    ]
    order = rng.permutation(len(rows))
    return pd.DataFrame([rows[i] for i in order], columns=["influencer", "platform"])


def test_a_platform_s_creators_are_held_out_as_when_it_is_trained_alone():
    base = _two_platform_rows()
    instagram = base[base["platform"] == "instagram"].reset_index(drop=True)
    together = influencer_holdout(base["influencer"], 0.25, 7, base["platform"])
    alone = influencer_holdout(instagram["influencer"], 0.25, 7, instagram["platform"])
    held = set(base["influencer"][together])
    assert held & set(instagram["influencer"]) == set(instagram["influencer"][alone])
    # Each platform gives its own share: 10 of 40 and 4 of 15 creators.
    assert sum(name.startswith("tiktok") for name in held) == 4
    assert len(held) == 14


def test_grouped_folds_of_several_platforms_are_each_platform_s_own_folds():
    base = _two_platform_rows()
    folds = creator_folds(base, 5, seed=0)
    tested = np.concatenate([test for _, test in folds])
    assert sorted(tested) == list(range(len(base)))  # every row tested once
    for train, test in folds:
        assert not set(base["influencer"].iloc[train]) & set(base["influencer"].iloc[test])
    for platform in ("instagram", "tiktok"):
        rows = np.flatnonzero(base["platform"].to_numpy() == platform)
        alone = creator_folds(base.iloc[rows].reset_index(drop=True), 5, seed=0)
        for (_, test), (_, test_alone) in zip(folds, alone, strict=True):
            assert set(base["influencer"].iloc[test]) & set(base["influencer"].iloc[rows]) == set(
                base["influencer"].iloc[rows[test_alone]]
            )
