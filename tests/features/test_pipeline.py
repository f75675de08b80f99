"""The fitted model of :mod:`features.pipeline`: a scikit-learn estimator."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from features.aggregate import CATEGORICAL_FEATURES, compute_features, examples_at
from features.contract import validate
from features.engagement import ER_DEFINITION
from features.pipeline import CellEarlyStopping, ConformalInterval, EngagementModel, interval_group

NOW = pd.Timestamp("2020-06-01", tz="UTC")
PARAMS = {"objective": "regression", "num_leaves": 4, "min_data_in_leaf": 5, "learning_rate": 0.3}


def creators(categories: list[str], posts_each: int = 4) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Raw profiles and posts: one creator per entry of ``categories``."""
    rng = np.random.default_rng(0)
    names = [f"user{i}" for i in range(len(categories))]
    profiles = pd.DataFrame(
        {
            "influencer": names,
            "followers": [str(1000 * (i % 7 + 1) ** 2) for i in range(len(names))],
            "category": categories,
        }
    )
    posts = pd.DataFrame(
        [
            (
                name,
                f"{name}_{j}",
                f"2020-01-{j * 3 + 1:02d}T12:00:00Z",
                str(int(rng.integers(10, 500))),
                str(int(rng.integers(0, 20))),
                "x|y" if j % 2 else "z",
            )
            for name in names
            for j in range(posts_each)
        ],
        columns=["influencer", "post_id", "posted_at", "likes", "comments", "hashtags"],
    )
    return profiles, posts


@pytest.fixture(scope="module")
def base_and_label() -> tuple[pd.DataFrame, np.ndarray]:
    profiles, posts = creators(["comedy"] * 30 + ["fashion"] * 30 + ["crypto"] * 3)
    data = validate(profiles, posts, now=NOW)
    base = compute_features(
        data.profiles, data.posts, examples_at(data.profiles, pd.Timestamp("2020-01-11", tz="UTC"))
    )
    y = np.nan_to_num(base["log_er_median"].to_numpy(dtype="float64"), nan=-4.0)
    return base, y


@pytest.fixture(scope="module")
def fitted(base_and_label) -> EngagementModel:
    base, y = base_and_label
    return EngagementModel(PARAMS, interval_level=0.9, n_topics=2).fit(base, y, num_boost_round=5)


def test_init_stores_its_parameters_as_given():
    model = EngagementModel(PARAMS, interval_level=0.7, seed=3, prior_strength=2.0, n_topics=4)
    assert model.params is PARAMS  # not a copy: clone checks the very object
    assert model.get_params() == {
        "params": PARAMS,
        "interval_level": 0.7,
        "seed": 3,
        "prior_strength": 2.0,
        "n_topics": 4,
    }
    # Nothing learned (nor the metadata) exists before fit.
    assert not [name for name in vars(model) if name.endswith("_") or name == "metadata"]
    with pytest.raises(NotFittedError):
        check_is_fitted(model)


def test_get_params_round_trips_through_set_params():
    model = EngagementModel(PARAMS, n_topics=2)
    other = EngagementModel().set_params(**model.get_params())
    assert other.get_params() == model.get_params()
    assert other.set_params(seed=7).seed == 7 and model.seed == 0


def test_clone_is_an_unfitted_copy_with_the_same_params(fitted):
    copy = clone(fitted)
    assert type(copy) is EngagementModel
    assert copy.get_params() == fitted.get_params()
    assert copy.params == PARAMS and copy.params is not fitted.params  # deep-copied
    assert not hasattr(copy, "booster_") and not hasattr(copy, "metadata")
    with pytest.raises(NotFittedError):
        check_is_fitted(copy)
    check_is_fitted(fitted)


def test_a_clone_fitted_on_the_same_data_predicts_identically(fitted, base_and_label):
    base, y = base_and_label
    refit = clone(fitted).fit(base, y, num_boost_round=5)
    np.testing.assert_array_equal(refit.predict_log(base), fitted.predict_log(base))
    np.testing.assert_array_equal(
        refit.contributions(base).to_numpy(), fitted.contributions(base).to_numpy()
    )
    assert refit.feature_names_ == fitted.feature_names_


def test_fit_starts_the_metadata_afresh(base_and_label):
    base, y = base_and_label
    model = EngagementModel(PARAMS, n_topics=2).fit(base, y, num_boost_round=1)
    assert model.metadata == {"engagement_rate_definition": ER_DEFINITION}
    model.metadata["n_boost_rounds"] = 1
    model.fit(base, y, num_boost_round=1)
    assert model.metadata == {"engagement_rate_definition": ER_DEFINITION}


def test_lightgbm_defaults_when_no_params_are_given(base_and_label):
    base, y = base_and_label
    model = EngagementModel(n_topics=2).fit(base, y, num_boost_round=2)
    assert model.best_iteration_ == 2
    assert np.isfinite(model.predict_log(base)).all()


def test_one_matrix_for_fit_and_predict(fitted, base_and_label):
    base, y = base_and_label
    matrix = fitted.booster_matrix(base)
    names = fitted.feature_names_
    assert fitted.booster_.feature_name() == names
    assert not fitted.booster_.pandas_categorical  # LightGBM never saw pandas categories
    # The category columns are LightGBM categorical features, given as their positions.
    assert [names[j] for j in fitted.categorical_columns()] == list(CATEGORICAL_FEATURES)
    # Fitting LightGBM by hand on that same matrix gives the very trees of fit.
    import lightgbm as lgb

    params = {"verbosity": -1, "seed": 0, "deterministic": True, "force_col_wise": True, **PARAMS}
    by_hand = lgb.train(params, fitted.dataset(matrix, y), num_boost_round=5)
    np.testing.assert_array_equal(
        by_hand.predict(matrix), fitted.booster_.predict(matrix, num_iteration=5)
    )
    frame = fitted.model_matrix(base)
    assert list(frame.columns) == names
    np.testing.assert_array_equal(frame.to_numpy(), matrix)


def test_a_booster_fitted_on_the_pipeline_frame_reads_the_booster_matrix(fitted, base_and_label):
    # Models saved before fit used the booster matrix were fitted on the scikit-learn
    # pipeline's frame (pandas categories; the booster keeps them as pandas_categorical). They
    # must predict the same from the booster matrix as LightGBM predicts from that frame.
    import lightgbm as lgb

    base, y = base_and_label
    frame = fitted.steps_.transform(base)[fitted.feature_names_]
    params = {"verbosity": -1, "seed": 0, "deterministic": True, **PARAMS}
    old = lgb.train(params, lgb.Dataset(frame, label=y), num_boost_round=5)
    encoder = fitted.steps_.named_steps["categories"]
    assert old.pandas_categorical == [encoder.categories_[c] for c in CATEGORICAL_FEATURES]
    rows_ = base.iloc[:4].assign(category=["comdy", "crypto", "never seen", "fashion"])
    rows_.loc[rows_.index[0], "tier"] = "a tier never seen"
    matrix = fitted.booster_matrix(rows_)
    np.testing.assert_array_equal(
        old.predict(matrix), old.predict(fitted.steps_.transform(rows_)[fitted.feature_names_])
    )
    # And LightGBM learns the very same trees from the matrix as from the frame.
    new = lgb.train(
        params,
        lgb.Dataset(
            fitted.booster_matrix(base),
            label=y,
            feature_name=fitted.feature_names_,
            categorical_feature=fitted.categorical_columns(),
        ),
        num_boost_round=5,
    )
    assert new.dump_model()["tree_info"] == old.dump_model()["tree_info"]


# --------------------------------------------------------- the interval (ConformalInterval)


def test_conformal_interval_covers_its_nominal_share_per_group():
    rng = np.random.default_rng(1)
    groups = pd.Series(np.repeat(["nano/history", "mega/cold"], 4000))
    scale = np.where(groups == "mega/cold", 3.0, 0.5)
    calib = rng.normal(size=8000) * scale
    interval = ConformalInterval(0.8).fit(calib, groups)
    fresh = rng.normal(size=8000) * scale
    lo, hi = interval.bounds(np.zeros(8000), groups)
    for g in groups.unique():
        m = (groups == g).to_numpy()
        assert 0.77 <= np.mean((fresh[m] >= lo[m]) & (fresh[m] <= hi[m])) <= 0.83


def test_small_history_bands_fall_back_to_the_tiers_history_then_the_tier():
    groups = pd.Series(
        ["tiktok:micro/long"] * 100 + ["tiktok:micro/short"] * 40 + ["tiktok:micro/medium"] * 5
    )
    interval = ConformalInterval(0.8).fit(np.linspace(-1, 1, 145), groups)
    assert "tiktok:micro/medium" not in interval.offsets_
    # The tier's history rows, all bands together, serve the small band.
    assert interval.offsets_for("tiktok:micro/medium") == interval.offsets_["micro/history"]
    assert interval.group_sizes_["micro/history"] == 145
    # A group never seen at calibration falls back as far as it has to.
    assert interval.offsets_for("instagram:micro/short") == interval.offsets_["micro/short"]
    assert interval.offsets_for("instagram:micro/medium") == interval.offsets_["micro/history"]
    assert interval.offsets_for("instagram:mega/long") == interval.global_offsets_


def test_interval_groups_split_history_into_bands():
    from features.pipeline import interval_group

    base = pd.DataFrame(
        {"tier": ["nano"] * 5, "platform": ["tiktok"] * 5, "n_history_posts": [0, 1, 4, 5, 40]}
    )
    assert interval_group(base).tolist() == [
        "tiktok:nano/cold",
        "tiktok:nano/short",
        "tiktok:nano/short",
        "tiktok:nano/medium",
        "tiktok:nano/long",
    ]


def test_cold_start_interval_groups_keep_fresh_follower_counts_apart():
    from features.pipeline import interval_group

    base = pd.DataFrame(
        {
            "tier": ["nano"] * 5,
            "platform": ["instagram"] * 5,
            "n_history_posts": [0, 0, 0, 0, 3],
            "follower_count_age_days": [0.0, 60.0, 400.0, np.nan, 0.0],
        }
    )
    assert interval_group(base).tolist() == [
        "instagram:nano/cold|fresh",  # scoring today
        "instagram:nano/cold|fresh",
        "instagram:nano/cold|stale",
        "instagram:nano/cold",  # reading time unknown
        "instagram:nano/short",  # a history: its rates and its label share the count
    ]


def test_a_small_fresh_group_keeps_its_freshness_before_it_drops_it():
    groups = pd.Series(
        ["instagram:nano/cold|fresh"] * 10
        + ["instagram:mega/cold|fresh"] * 40
        + ["instagram:nano/cold|stale"] * 100
    )
    interval = ConformalInterval(0.8).fit(np.linspace(-1, 1, 150), groups)
    # Too few of its own: every tier's fresh cold starts, not the stale ones of its tier.
    assert interval.offsets_for("instagram:nano/cold|fresh") == interval.offsets_["cold|fresh"]
    assert interval.group_sizes_["cold|fresh"] == 50
    # Too few fresh rows at every level: the group without freshness.
    few = pd.Series(["instagram:nano/cold|fresh"] * 10 + ["instagram:nano/cold|stale"] * 100)
    interval = ConformalInterval(0.8).fit(np.linspace(-1, 1, 110), few)
    assert (
        interval.offsets_for("instagram:nano/cold|fresh")
        == interval.offsets_["instagram:nano/cold"]
    )


def test_small_cold_start_groups_fall_back_to_every_tiers_cold_starts_then_their_tier():
    groups = pd.Series(["micro/history"] * 100 + ["micro/cold"] * 5 + ["mega/cold"] * 40)
    interval = ConformalInterval(0.8).fit(np.linspace(-1, 1, 145), groups)
    assert "micro/cold" not in interval.offsets_
    assert interval.group_sizes_["cold"] == 45
    assert interval.offsets_for("micro/cold") == interval.offsets_["cold"]
    few = pd.Series(["micro/history"] * 100 + ["micro/cold"] * 5)
    interval = ConformalInterval(0.8).fit(np.linspace(-1, 1, 105), few)
    assert interval.offsets_for("micro/cold") == interval.offsets_["micro"]


def test_predictive_distribution_matches_the_calibration_residuals():
    # Normal misses: the stored distribution gives normal quantiles and tail probabilities.
    rng = np.random.default_rng(3)
    groups = pd.Series(["mega/long"] * 20000)
    interval = ConformalInterval(0.8).fit(rng.normal(size=20000), groups)
    codes, names = np.zeros(3, dtype="int64"), ["mega/long"]
    q = interval.quantiles_by_code(
        np.array([0.0, 1.0, -2.0]), codes, names, np.array([0.1, 0.5, 0.9])
    )
    np.testing.assert_allclose(q[0], [-1.2816, 0.0, 1.2816], atol=0.05)
    np.testing.assert_allclose(q[1] - q[0], 1.0)  # the prediction shifts the whole distribution
    p = interval.prob_at_least_by_code(np.zeros(3), codes, names, np.array([-1.2816, 0.0, 1.2816]))
    np.testing.assert_allclose(p, [0.9, 0.5, 0.1], atol=0.02)
    # Beyond every residual seen: certain either way, never outside [0, 1].
    far = interval.prob_at_least_by_code(np.zeros(2), codes[:2], names, np.array([-50.0, 50.0]))
    assert far.tolist() == [1.0, 0.0]


# ------------------------------------------------------------- categories through the model


@pytest.fixture(scope="module")
def vocabulary_model() -> tuple[EngagementModel, pd.DataFrame]:
    # 30 comedy creators (listed with a second genre), 30 fashion, 3 crypto (rare).
    profiles, posts = creators(["Comedy, Acting"] * 30 + ["fashion"] * 30 + ["crypto"] * 3)
    data = validate(profiles, posts, now=NOW)
    base = compute_features(
        data.profiles, data.posts, examples_at(data.profiles, pd.Timestamp("2020-01-11", tz="UTC"))
    )
    y = np.nan_to_num(base["log_er_median"].to_numpy(dtype="float64"), nan=-4.0)
    model = EngagementModel(
        {"objective": "regression", "num_leaves": 4, "min_data_in_leaf": 5, "learning_rate": 0.3},
        n_topics=2,
    )
    model.fit(base, y, num_boost_round=5)
    model.calibrate(base, y)
    return model, base


def test_a_frequent_unknown_category_keeps_its_name_through_fit_and_predict(vocabulary_model):
    model, base = vocabulary_model
    assert model.steps_.named_steps["vocabulary"].vocabulary_ == ("comedy", "fashion", "other")
    assert "comedy" in model.steps_.named_steps["categories"].categories_["category"]
    predicted = model.predict_features(base)
    assert predicted["category"].value_counts().to_dict() == {
        "comedy": 30,
        "fashion": 30,
        "other": 3,
    }


def test_misspelled_and_rare_categories_at_predict_time(vocabulary_model):
    model, base = vocabulary_model
    rows_ = base.iloc[:4].assign(category=["comdy", "fashon", "crypto", "never seen"])
    predicted = model.predict_features(rows_)
    assert predicted["category"].tolist() == ["comedy", "fashion", "other", "other"]
    # The model sees what it reports: the same numbers as for the mapped names.
    mapped = rows_.assign(category=["comedy", "fashion", "other", "other"])
    np.testing.assert_array_equal(model.booster_matrix(rows_), model.booster_matrix(mapped))
    np.testing.assert_array_equal(model.predict_log(rows_), model.predict_log(mapped))


def test_booster_matrix_holds_what_the_pipeline_frame_holds(vocabulary_model):
    # The scikit-learn pipeline's frame (pandas categories) and the booster matrix agree: the
    # category codes are the encoder's in both.
    model, base = vocabulary_model
    rows_ = base.iloc[:3].assign(category=["comdy", "crypto", "fashion"])
    frame = model.steps_.transform(rows_)
    assert frame["category"].astype(str).tolist() == ["comedy", "other", "fashion"]
    codes = frame["category"].cat.codes.to_numpy()
    column = model.feature_names_.index("category")
    np.testing.assert_array_equal(
        model.booster_matrix(rows_)[:, column], np.where(codes >= 0, codes, np.nan)
    )


def two_platforms(seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Instagram creators (many) and TikTok creators (few) whose labels follow their followers
    in opposite directions: trees shared by both follow Instagram's majority. Each creator is
    an example twice: before its first post (a cold start) and after its fourth."""
    profiles, posts = creators(["comedy"] * 240, posts_each=4)
    profiles["influencer"] = profiles["influencer"] + f"_{seed}"
    posts["influencer"] = posts["influencer"] + f"_{seed}"
    profiles["platform"] = ["tiktok" if i % 6 == 0 else "instagram" for i in range(len(profiles))]
    data = validate(profiles, posts, now=NOW)
    base = pd.concat(
        [
            compute_features(data.profiles, data.posts, examples_at(data.profiles, pd.Timestamp(t)))
            for t in ("2019-12-01T00:00:00Z", "2020-01-11T00:00:00Z")
        ],
        ignore_index=True,
    )
    followers = base["log_followers"].to_numpy(dtype="float64")
    sign = np.where(base["platform"].astype(str).to_numpy() == "tiktok", -1.0, 1.0)
    rng = np.random.default_rng(seed)
    y = -4.0 + sign * (followers - followers.mean()) + rng.normal(0, 0.1, len(base))
    return base, y


def shared_trees(model: EngagementModel, matrix: np.ndarray) -> np.ndarray:
    """What the shared booster alone adds to the baseline, read with LightGBM's own API."""
    return model.booster_.predict(matrix, num_iteration=model.best_iteration_)


def test_trained_on_several_platforms_each_gets_a_stage_that_adds_up():
    base, y = two_platforms(0)
    # Stage rounds come from early stopping on validation creators the shared trees never saw.
    model = EngagementModel(PARAMS, n_topics=2).fit(
        base, y, valid=two_platforms(2), num_boost_round=20
    )
    stages = {
        f"{platform}{rows}"
        for platform in ("instagram", "tiktok")
        for rows in ("", " cold start", " with history")
    }
    cells = {
        f"{platform} {rows} (shared trees)"
        for platform in ("instagram", "tiktok")
        for rows in ("cold start", "with history")
    }
    assert set(model.platform_rounds_) == stages | cells
    assert model.platform_boosters_, "no platform stage was kept"
    matrix = model.booster_matrix(base)
    shared = model.baseline_log(matrix) + shared_trees(model, matrix)
    predicted = model.predict_log(base)
    assert not np.allclose(predicted, shared)
    # Reasons still add up to the prediction with the stages included.
    np.testing.assert_allclose(model.contributions(base).sum(axis=1), predicted, atol=1e-9)
    # On creators it never saw, the minority platform is forecast better with its stage.
    new_base, new_y = two_platforms(1)
    tiktok = new_base["platform"].astype(str).to_numpy() == "tiktok"
    new_matrix = model.booster_matrix(new_base)
    without = model.baseline_log(new_matrix) + shared_trees(model, new_matrix)
    with_stage = model.predict_log(new_base)
    assert np.abs(with_stage - new_y)[tiktok].mean() < np.abs(without - new_y)[tiktok].mean()


def test_a_refit_takes_each_platform_stage_rounds_as_given():
    base, y = two_platforms(0)
    given = {"tiktok": 5, "tiktok cold start": 3, "tiktok with history": 7}
    model = EngagementModel(PARAMS, n_topics=2).fit(
        base, y, num_boost_round=20, platform_rounds=given
    )
    every_shared_tree = {
        f"{platform} {rows} (shared trees)": 20
        for platform in ("instagram", "tiktok")
        for rows in ("cold start", "with history")
    }
    assert model.platform_rounds_ == {
        "instagram": 0,
        "instagram cold start": 0,
        "instagram with history": 0,
        **given,
        **every_shared_tree,
    }
    assert sorted(rounds for _, rounds in model.platform_boosters_.values()) == [3, 5, 7]
    # Without a validation set or given rounds, the model has no stage.
    plain = EngagementModel(PARAMS, n_topics=2).fit(base, y, num_boost_round=20)
    assert plain.platform_boosters_ == {}


def test_each_cell_uses_the_shared_trees_only_as_far_as_they_helped_it():
    base, y = two_platforms(0)
    given = {"tiktok with history (shared trees)": 4, "instagram cold start (shared trees)": 50}
    model = EngagementModel(PARAMS, n_topics=2).fit(
        base, y, num_boost_round=20, platform_rounds=given
    )
    # At most the trees there are.
    assert model.platform_rounds_["instagram cold start (shared trees)"] == 20
    assert model.platform_rounds_["tiktok cold start (shared trees)"] == 20
    matrix = model.booster_matrix(base)
    tiktok = base["platform"].astype(str).to_numpy() == "tiktok"
    history = base["n_history_posts"].to_numpy() > 0
    cut = tiktok & history
    start = model.baseline_log(matrix)
    every = model.booster_.predict(matrix, num_iteration=20)
    four = model.booster_.predict(matrix, num_iteration=4)
    predicted = model.predict_log(base)  # no stage was given rounds: the shared trees alone
    np.testing.assert_allclose(predicted[cut], (start + four)[cut])
    np.testing.assert_allclose(predicted[~cut], (start + every)[~cut])
    np.testing.assert_allclose(model.contributions(base).sum(axis=1), predicted, atol=1e-9)


def test_shared_trees_grow_while_any_cell_still_gains_and_each_keeps_its_best_round():
    """Early stopping per cell: a cell whose validation loss stopped falling keeps its best
    round while another still gains; boosting stops once every cell has stalled."""
    import lightgbm as lgb

    stopping = CellEarlyStopping(patience=3)
    # Cell 0 is best after round 2; cell 1 keeps falling until round 6.
    losses = [(5.0, 9.0), (4.0, 8.0), (4.5, 7.0), (4.6, 6.0), (4.7, 5.0), (4.8, 4.0)]
    losses += [(4.9, 4.5), (5.0, 4.6), (5.1, 4.7)]
    rounds_run = 0
    with pytest.raises(lgb.callback.EarlyStopException) as stopped:
        for iteration, pair in enumerate(losses):
            env = SimpleNamespace(
                iteration=iteration,
                evaluation_result_list=[(f"valid_{i}", "l2", v, False) for i, v in enumerate(pair)],
            )
            stopping(env)
            rounds_run += 1
    assert rounds_run == 8  # stopped in round 9, three rounds after cell 1's best
    assert stopping.best_rounds == [2, 6]
    assert stopped.value.best_iteration == 5  # 0-based: the trees of the latest best


def test_stages_add_up_platform_first_then_cold_start_or_history():
    # A platform's stage moves all of its rows (models saved before the split into cold starts
    # and histories have only these); a cold-start stage only the platform's cold starts.
    base, y = two_platforms(0)
    model = EngagementModel(PARAMS, n_topics=2).fit(
        base, y, num_boost_round=20, platform_rounds={"tiktok": 5, "tiktok cold start": 3}
    )
    stages = dict(model.platform_boosters_)
    assert len(stages) == 2
    (platform_key, (platform_stage, n_platform)), (cell_key, (cell_stage, n_cell)) = sorted(
        stages.items(), key=lambda item: isinstance(item[0], tuple)
    )
    assert cell_key == (platform_key, False)
    matrix = model.booster_matrix(base)
    tiktok = base["platform"].astype(str).to_numpy() == "tiktok"
    cold = tiktok & (base["n_history_posts"].to_numpy() == 0)
    expected = model.baseline_log(matrix) + shared_trees(model, matrix)
    expected[tiktok] += platform_stage.predict(matrix[tiktok], num_iteration=n_platform)
    expected[cold] += cell_stage.predict(matrix[cold], num_iteration=n_cell)
    np.testing.assert_allclose(model.predict_log(base), expected, atol=1e-12)
    # A model with the platform's stage alone (as saved before) adds it to every TikTok row.
    model.platform_boosters_ = {platform_key: (platform_stage, n_platform)}
    expected[cold] -= cell_stage.predict(matrix[cold], num_iteration=n_cell)
    np.testing.assert_allclose(model.predict_log(base), expected, atol=1e-12)


def test_one_platform_has_no_stage(fitted, base_and_label):
    base, _ = base_and_label
    assert fitted.platform_boosters_ == {}
    matrix = fitted.booster_matrix(base)
    np.testing.assert_array_equal(
        fitted.predict_log(base), fitted.baseline_log(matrix) + shared_trees(fitted, matrix)
    )


def test_a_platform_training_never_saw_is_forecast_from_its_starting_point(fitted, base_and_label):
    # Trained on Instagram only: a TikTok row gets no tree corrections (learned on other
    # platforms' creators), only the creator's own level shrunk towards its peers; the same
    # creators on Instagram keep theirs, and the reasons still add up.
    base, _ = base_and_label
    tiktok = base.assign(platform="tiktok")
    matrix = fitted.booster_matrix(tiktok)
    assert fitted.unseen_platform(matrix).all()
    assert not fitted.unseen_platform(fitted.booster_matrix(base)).any()
    predicted = fitted.predict_log(tiktok)
    np.testing.assert_array_equal(predicted, fitted.baseline_log(matrix))
    assert not np.allclose(fitted.predict_log(base), fitted.baseline_log(matrix))
    np.testing.assert_allclose(fitted.contributions(tiktok).sum(axis=1), predicted, atol=1e-9)
    mixed = pd.concat([base.iloc[:3], tiktok.iloc[3:6]], ignore_index=True)
    np.testing.assert_allclose(
        fitted.predict_log(mixed),
        np.concatenate([fitted.predict_log(base.iloc[:3]), predicted[3:6]]),
        atol=1e-12,
    )


def test_the_trees_see_each_level_relative_to_the_starting_point(fitted, base_and_label):
    import copy

    from features.transformers import RELATIVE_LEVELS

    base, _ = base_and_label
    matrix = fitted.booster_matrix(base)
    column = {name: matrix[:, j] for j, name in enumerate(fitted.feature_names_)}
    start = column["shrunk_log_er"]
    for name in RELATIVE_LEVELS:
        np.testing.assert_allclose(column[f"{name}_vs_shrunk"], column[name] - start, atol=1e-12)
    # The starting point itself is not changed by them: with no trees the model is still it.
    np.testing.assert_array_equal(fitted.baseline_log(matrix), start)
    # A prior fitted before them (a saved model's) adds none.
    older = copy.deepcopy(fitted.steps_.named_steps["prior"])
    del older.relative_levels_
    assert older.added_features() == ["prior_log_er", "shrunk_log_er"]
    assert set(older.added_columns(base)) == {"prior_log_er", "shrunk_log_er"}


# ------------------------------------------------------------- intervals scaled by own spread


def spread_creators(seed: int, n_creators: int = 600, depends: bool = True):
    """(base, label, predicted) of creators with 60-post histories: each creator's spread
    (its history's MAD) varies 10x, and with ``depends`` its next posts miss by that much."""
    rng = np.random.default_rng(seed)
    sd = np.exp(rng.uniform(np.log(0.2), np.log(2.0), n_creators))
    posts = 8
    creator = np.repeat([f"c{seed}_{i}" for i in range(n_creators)], posts)
    base = pd.DataFrame(
        {
            "influencer": creator,
            "tier": "micro",
            "n_history_posts": 60.0,
            "log_er_mad": np.repeat(sd / 1.4826, posts),
        }
    )
    miss = np.repeat(sd if depends else np.full(n_creators, 0.7), posts)
    return base, rng.normal(size=len(base)) * miss, np.zeros(len(base))


def coverage_by_third(interval: ConformalInterval, base, label, predicted) -> list[float]:
    from features.pipeline import spread_thirds

    low, high = interval.bounds(predicted, interval_group(base), interval.row_scale(base))
    third, _ = spread_thirds(base["n_history_posts"], base["log_er_mad"])
    inside = (label >= low) & (label <= high)
    return [float(inside[third == k].mean()) for k in range(3)]


def test_the_interval_widens_for_erratic_creators_and_narrows_for_steady_ones():
    from features.pipeline import calibrated_interval

    base, label, predicted = spread_creators(0)
    interval = calibrated_interval(0.8, predicted, base, label)
    # The misses scale one for one with the spread, which the shrinkage pulls in a little.
    assert interval.spread_.exponent >= 1.0
    fresh = spread_creators(1)
    # A power of the shrunk spread is not exactly each creator's miss: close, not equal.
    assert all(0.72 <= c <= 0.86 for c in coverage_by_third(interval, *fresh))
    # One interval for the whole group covers the steady nearly always, the erratic far less.
    plain = ConformalInterval(0.8).fit(label, interval_group(base))
    steady, _, erratic = coverage_by_third(plain, *fresh)
    assert steady > 0.95 and erratic < 0.65
    # Cold starts are not scaled.
    cold = base.head(3).assign(n_history_posts=0.0, log_er_mad=np.nan)
    assert interval.row_scale(cold).tolist() == [1.0, 1.0, 1.0]


def test_spread_that_says_nothing_of_the_misses_leaves_the_interval_unscaled():
    from features.pipeline import calibrated_interval

    base, label, predicted = spread_creators(2, depends=False)
    interval = calibrated_interval(0.8, predicted, base, label)
    assert interval.spread_.exponent <= 0.2
    assert all(
        0.75 <= c <= 0.85 for c in coverage_by_third(interval, *spread_creators(3, depends=False))
    )


def test_scaled_bounds_quantiles_and_tail_probabilities_agree():
    from features.pipeline import SpreadScale, calibrated_interval

    base, label, predicted = spread_creators(4)
    interval = calibrated_interval(0.8, predicted, base, label)
    codes, names = pd.factorize(interval_group(base).astype(str))
    scale = interval.row_scale(base)
    low, high = interval.bounds_by_code(predicted, codes, list(names), scale)
    q = interval.quantiles_by_code(predicted, codes, list(names), np.array([0.1, 0.9]), scale)
    np.testing.assert_allclose(q[:, 0], low, atol=0.05 * scale.max())
    np.testing.assert_allclose(q[:, 1], high, atol=0.05 * scale.max())
    p = interval.prob_at_least_by_code(predicted, codes, list(names), high, scale)
    np.testing.assert_allclose(p, 0.1, atol=0.02)
    # Exponent 0, or an interval saved before the scale existed: the unscaled bounds.
    assert SpreadScale(1.0, 0.0)(base).tolist() == [1.0] * len(base)
    old = ConformalInterval(0.8).fit(label, interval_group(base))
    assert old.spread_ is None and old.row_scale(base).tolist() == [1.0] * len(base)
