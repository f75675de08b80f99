"""The model ``training.fitting.new_model`` builds: it starts from the creator's own level."""

from __future__ import annotations

import numpy as np

from features.pipeline import BASELINE_FEATURE
from tests.training_fixtures import creators_with_levels
from training.config import TrainConfig
from training.examples import post_examples
from training.fitting import new_model


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
