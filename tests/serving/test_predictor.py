"""The serving Python API (serving/predictor.py): loading safely, scoring raw tables,
statuses, peers."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.aggregate import compute_features, examples_at
from features.artifact import MANIFEST_FILE, MODEL_FILE, ArtifactError
from features.contract import DataValidationError, validate
from serving import Predictor, load_model
from serving.predictor import (
    OUTPUT_COLUMNS,
    STATUS_COLD,
    STATUS_NO_PROFILE,
    STATUS_OK,
    STATUS_ZERO_FOLLOWERS,
    UNSEEN_PLATFORM,
    percentile_in,
)
from tests.serving_fixtures import ServingModel, shortlist

REASON = re.compile(r"^[^;()]+\([+-]\d+\.\d\d\)$")


@pytest.fixture(scope="session")
def predictor(served: ServingModel) -> Predictor:
    return load_model(served.model_dir)


@pytest.fixture(scope="session")
def candidates(served: ServingModel) -> tuple[pd.DataFrame, pd.DataFrame]:
    return shortlist(served.data)


# --------------------------------------------------------------------------- loading


def _copy_model(served: ServingModel, tmp_path: Path) -> Path:
    target = tmp_path / "models" / served.model_dir.name
    shutil.copytree(served.model_dir, target)
    return target


def test_missing_folder_is_refused(tmp_path):
    with pytest.raises(ArtifactError, match="no such model folder"):
        load_model(tmp_path / "nope")


def test_latest_without_any_model_is_refused(tmp_path):
    with pytest.raises(ArtifactError, match="no saved model under"):
        load_model("latest", models_dir=tmp_path)


def test_one_changed_byte_in_the_model_is_refused_before_unpickling(served, tmp_path):
    folder = _copy_model(served, tmp_path)
    data = bytearray((folder / MODEL_FILE).read_bytes())
    data[len(data) // 2] ^= 0x01
    (folder / MODEL_FILE).write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"model\.joblib does not match its SHA-256"):
        load_model(folder)


def test_missing_manifest_is_refused(served, tmp_path):
    folder = _copy_model(served, tmp_path)
    (folder / MANIFEST_FILE).unlink()
    with pytest.raises(ArtifactError, match="MANIFEST.json is missing"):
        load_model(folder)


def test_unknown_mlflow_model_is_refused(served):
    with pytest.raises(ArtifactError, match="cannot be fetched"):
        load_model("models:/no-such-model@champion", tracking_uri=served.tracking_uri)


def test_latest_version_name_and_mlflow_alias_load_the_same_model(served, predictor, candidates):
    profiles, posts = candidates
    expected = predictor.predict(profiles, posts, as_of="2020-01-01")
    for ref, models_dir in (
        ("latest", served.model_dir.parent),
        (served.model_dir.name, served.model_dir.parent),
    ):
        got = load_model(ref, models_dir=models_dir).predict(profiles, posts, as_of="2020-01-01")
        pd.testing.assert_frame_equal(got, expected)
    registered = load_model("models:/engagement@champion", tracking_uri=served.tracking_uri)
    pd.testing.assert_frame_equal(registered.predict(profiles, posts, as_of="2020-01-01"), expected)


# --------------------------------------------------------------------------- predicting


def test_one_row_per_profile_with_planner_columns(predictor, candidates):
    profiles, posts = candidates
    table = predictor.predict(profiles, posts)
    assert list(table.columns) == list(OUTPUT_COLUMNS)
    assert table["influencer"].tolist() == profiles["influencer"].tolist()
    scored = table[table["status"].str.startswith("ok")]
    assert len(scored) == len(profiles)
    er = scored["predicted_er"].to_numpy()
    assert np.all(scored["er_low"].to_numpy() <= er) and np.all(er <= scored["er_high"].to_numpy())
    np.testing.assert_allclose(scored["expected_engagements"], er * scored["followers"], rtol=1e-12)
    np.testing.assert_allclose(
        scored["followers"], pd.to_numeric(profiles["followers"]), rtol=1e-12
    )
    assert scored["peer_percentile"].between(0, 100).all()
    for text in scored["reasons"]:
        parts = text.split("; ")
        assert len(parts) == 3, text
        assert all(REASON.match(p) for p in parts), text


def test_predictions_come_from_the_fitted_pipeline_on_computed_features(predictor, candidates):
    profiles, posts = candidates
    as_of = pd.Timestamp("2019-01-01", tz="UTC")
    table = predictor.predict(profiles, posts, as_of)
    data = validate(profiles, posts)
    base = compute_features(data.profiles, data.posts, examples_at(data.profiles, as_of))
    core = predictor.model.predict_features(base)
    np.testing.assert_array_equal(table["predicted_er"].to_numpy(), core["predicted_er"].to_numpy())
    np.testing.assert_array_equal(table["er_high"].to_numpy(), core["er_high"].to_numpy())
    # Reasons add up with the bias to the prediction (they are the model's own contributions).
    contrib = predictor.model.contributions(base)
    np.testing.assert_allclose(contrib.sum(axis=1), core["predicted_log_er"], rtol=1e-9, atol=1e-9)


def test_prediction_is_the_baseline_plus_the_trees_on_the_booster_matrix(predictor, candidates):
    # Serving hands LightGBM the float matrix the booster was fitted on (category codes), for
    # the prediction and for the reasons; unseen values included.
    profiles, posts = candidates
    data = validate(profiles, posts)
    base = compute_features(
        data.profiles, data.posts, examples_at(data.profiles, pd.Timestamp("2019-01-01", tz="UTC"))
    )
    base.loc[base.index[:2], "category"] = ["a niche never seen in training", "travel"]
    base.loc[base.index[2], "tier"] = "a tier never seen in training"
    model = predictor.model
    matrix = model.booster_matrix(base)
    assert np.isnan(matrix[2, model.feature_names_.index("tier")])  # unseen: missing
    # The trees add to the starting point (the shrunk own level, LightGBM's init_score), which
    # the contributions credit to that column and the bias.
    start = matrix[:, model.feature_names_.index("shrunk_log_er")]
    trees = model.booster_.predict(matrix, num_iteration=model.best_iteration_)
    np.testing.assert_array_equal(model.predict_log(base), start + trees)
    shap = model.booster_.predict(matrix, num_iteration=model.best_iteration_, pred_contrib=True)
    shap[:, model.feature_names_.index("shrunk_log_er")] += start - model.baseline_mean_
    shap[:, -1] += model.baseline_mean_
    np.testing.assert_allclose(model.contributions(base).to_numpy(), shap, atol=1e-12)


def test_interval_by_group_code_matches_the_group_names(predictor, candidates):
    # Prediction looks the conformal offsets up by group code; calibration names the groups.
    from features.pipeline import interval_group

    profiles, posts = candidates
    data = validate(profiles, posts)
    base = compute_features(
        data.profiles, data.posts, examples_at(data.profiles, pd.Timestamp("2019-01-01", tz="UTC"))
    )
    model = predictor.model
    predicted = model.predict_log(base)
    groups = interval_group(base)
    cold = base["n_history_posts"].to_numpy() == 0
    band = groups.str.partition("|")[0]
    assert (band[cold].str.endswith("/cold")).all() and not band[~cold].str.endswith("/cold").any()
    # Counts read now, for cutoffs in 2019: the cold starts' counts are stale.
    assert (
        groups[cold].str.endswith("|stale").all()
        and not groups[~cold].str.contains("|", regex=False).any()
    )
    assert all(
        g.startswith(f"{p}:{t}/")
        for g, p, t in zip(groups, base["platform"], base["tier"], strict=True)
    )
    expected = model.interval_.bounds(predicted, groups, model.interval_.row_scale(base))
    actual = model.predict_log_interval(base, predicted)
    np.testing.assert_array_equal(actual[0], expected[0])
    np.testing.assert_array_equal(actual[1], expected[1])


def test_candidate_without_posts_is_a_profile_only_estimate(predictor, candidates):
    profiles, posts = candidates
    table = predictor.predict(profiles, posts).set_index("influencer")
    no_posts = set(profiles["influencer"]) - set(posts["influencer"])
    assert no_posts
    for name in no_posts:
        row = table.loc[name]
        assert row["status"] == STATUS_COLD
        # An object column may hold numpy's False, which is not ``False``.
        assert row["has_history"] is False or row["has_history"] == False  # noqa: E712
        assert (
            np.isfinite(row["predicted_er"])
            and row["er_low"] <= row["predicted_er"] <= row["er_high"]
        )
        assert row["reasons"] and row["reasons"].count("no post history") <= 1
    with_posts = table.loc[list(set(posts["influencer"]))]
    assert (with_posts["status"] == STATUS_OK).all()


def test_a_platform_the_model_never_saw_is_scored_from_the_own_level_and_says_so(
    predictor, candidates
):
    from serving.planner import summarise

    profiles, posts = candidates
    instagram = predictor.predict(profiles, posts).set_index("influencer")
    tiktok = (
        predictor.predict(profiles.assign(platform="tiktok"), posts.assign(platform="tiktok"))
        .set_index("influencer")
        .loc[instagram.index]
    )
    note = UNSEEN_PLATFORM.format(platform="tiktok", trained="instagram")
    cold = ~instagram["has_history"].astype(bool)
    assert (tiktok.loc[~cold, "status"] == f"{STATUS_OK}; {note}").all()
    assert (tiktok.loc[cold, "status"] == f"{STATUS_COLD}; {note}").all()
    assert np.isfinite(tiktok["predicted_er"]).all()
    assert not np.allclose(tiktok["predicted_er"], instagram["predicted_er"])
    # Still scored and counted as cold starts where they have no history.
    summary = summarise(tiktok.reset_index())
    assert summary.scored == len(tiktok) and summary.cold == int(cold.sum())


def test_scoring_in_blocks_for_a_progress_bar_gives_the_same_table(
    predictor, candidates, monkeypatch
):
    import serving.predictor

    profiles, posts = candidates
    whole = predictor.score(profiles, posts, "2020-01-01", now=pd.Timestamp("2020-06-01", tz="UTC"))
    monkeypatch.setattr(serving.predictor, "SCORE_BLOCK", 3)  # several blocks of the candidates
    counted: list[tuple[int, int]] = []
    blocks = predictor.score(
        profiles,
        posts,
        "2020-01-01",
        now=pd.Timestamp("2020-06-01", tz="UTC"),
        progress=lambda done, total: counted.append((done, total)),
    )
    pd.testing.assert_frame_equal(blocks.table, whole.table)
    n = len(profiles)
    assert counted == [(0, n), *((min(k, n), n) for k in range(3, n + 3, 3))]


def test_the_steps_before_scoring_are_counted_for_a_progress_bar(predictor, candidates):
    from serving.predictor import CHECKING_STEP, FEATURES_STEP

    profiles, posts = candidates
    now = pd.Timestamp("2020-06-01", tz="UTC")
    steps: list[tuple[str, int, int]] = []
    counted = predictor.score(
        profiles, posts, "2020-01-01", now=now, steps=lambda *step: steps.append(step)
    )
    assert steps == [
        (CHECKING_STEP, 0, 1),
        (CHECKING_STEP, 1, 1),
        (FEATURES_STEP, 0, 1),
        (FEATURES_STEP, 1, 1),
    ]
    pd.testing.assert_frame_equal(
        counted.table, predictor.score(profiles, posts, "2020-01-01", now=now).table
    )


def test_no_posts_table_at_all_scores_everyone_cold(predictor, candidates):
    profiles, _ = candidates
    table = predictor.predict(profiles, None)
    assert (table["status"] == STATUS_COLD).all()


def test_zero_followers_get_a_row_saying_why_and_others_are_unchanged(predictor, candidates):
    profiles, posts = candidates
    as_of = "2020-01-01"
    before = predictor.predict(profiles, posts, as_of).set_index("influencer")
    broken = profiles.copy()
    broken.loc[2, "followers"] = "0"
    scored = predictor.score(broken, posts, as_of)
    table = scored.table.set_index("influencer")
    name = profiles.loc[2, "influencer"]
    assert table.index.tolist() == profiles["influencer"].tolist()  # kept in place, not dropped
    assert table.loc[name, "status"] == STATUS_ZERO_FOLLOWERS
    assert np.isnan(
        table.loc[name, ["predicted_er", "er_low", "er_high", "expected_engagements"]].astype(float)
    ).all()
    assert (
        table.loc[name, "category"] == profiles.loc[2, "category"]
        and table.loc[name, "followers"] == 0
    )
    others = table.drop(index=name)
    pd.testing.assert_series_equal(others["predicted_er"], before.drop(index=name)["predicted_er"])
    # The contract set the profile and its posts aside; the report says so, with rows and counts.
    (note,) = [p for p in scored.report.handled if p.column == "followers"]
    assert (note.rows, note.count, note.message) == (
        [3],
        1,
        "zero followers: engagement rate is undefined",
    )
    assert note.action == f"not scored; listed with status '{STATUS_ZERO_FOLLOWERS}'"
    rejects = scored.report.rejects_frame()
    own_posts = int((posts["influencer"] == name).sum())
    assert own_posts > 0
    assert rejects.groupby(["table", "reject_reason"]).size().to_dict() == {
        ("profiles", "zero followers: engagement rate is undefined"): 1,
        ("posts", "influencer has zero followers"): own_posts,
    }
    assert set(rejects["influencer"]) == {name}


def test_follower_counts_come_back_exactly_as_given(predictor, candidates):
    # The model works on log followers; the outputs must still carry the input's own count
    # (not 10000.000000000002), however large, and fractional counts never reach the model.
    profiles, posts = candidates
    counts = [10_000, 123_457, 999_999_999, 1, 7, 99_999_999_999, 3, 4_000_001]
    given = profiles.assign(followers=[str(counts[i % len(counts)]) for i in range(len(profiles))])
    table = predictor.predict(given, posts, "2020-01-01").set_index("influencer")
    expected = given.set_index("influencer")["followers"].astype("int64").astype("float64")
    assert (table.loc[expected.index, "followers"] == expected).all()
    assert table["followers"].map(lambda v: float(v).is_integer()).all()
    with pytest.raises(
        DataValidationError, match=r"column 'followers', rows 1: not a whole number"
    ):
        predictor.predict(given.assign(followers=["0.5", *given["followers"].iloc[1:]]), posts)


def test_zero_followers_in_a_shortlist_are_listed_only_when_named(predictor, candidates):
    profiles, posts = candidates
    broken = profiles.assign(followers=["0", *profiles["followers"].iloc[1:]])
    zero, other = profiles.loc[0, "influencer"], profiles.loc[1, "influencer"]
    named = predictor.predict(broken, posts, shortlist=[other, zero]).set_index("influencer")
    assert named.index.tolist() == [zero, other]  # profiles order
    assert (
        named.loc[zero, "status"] == STATUS_ZERO_FOLLOWERS
        and named.loc[other, "status"] == STATUS_OK
    )
    assert predictor.predict(broken, posts, shortlist=[other])["influencer"].tolist() == [other]


def test_only_zero_follower_candidates_are_all_listed(predictor, candidates):
    profiles, posts = candidates
    table = predictor.predict(profiles.head(2).assign(followers="0"), posts)
    assert table["influencer"].tolist() == profiles["influencer"].head(2).tolist()
    assert (table["status"] == STATUS_ZERO_FOLLOWERS).all() and table["predicted_er"].isna().all()


def test_zero_followers_do_not_hide_other_contract_breaks(predictor, candidates):
    profiles, posts = candidates
    broken = profiles.copy()
    broken.loc[0, "followers"] = "0"
    broken.loc[1, "followers"] = "-5"
    with pytest.raises(DataValidationError, match=r"rows 2: negative count") as info:
        predictor.predict(broken, posts)
    # Listed as handled, with its row, beside the fatal problem.
    assert not any(p.column == "followers" and "zero" in p.message for p in info.value.report.fatal)
    assert re.search(
        r"NOTE  profiles, column 'followers', rows 1: zero "
        r"followers: engagement rate is undefined -> not scored",
        str(info.value),
    )


@pytest.mark.parametrize(
    "column, value, match",
    [
        ("likes", "lots", "not a number"),  # text in a count column
        ("posted_at", "yesterday-ish", "not an ISO 8601 timestamp"),  # unreadable time
        ("comments", "-3", "negative count"),  # impossible count
    ],
)
def test_other_contract_breaks_still_raise(predictor, candidates, column, value, match):
    profiles, posts = candidates
    bad = posts.copy()
    bad.loc[0, column] = value
    with pytest.raises(DataValidationError, match=match):
        predictor.predict(profiles, bad)


def test_shortlist_names_without_profile_are_listed(predictor, candidates):
    profiles, posts = candidates
    wanted = [profiles.loc[3, "influencer"], "nobody_at_all", profiles.loc[0, "influencer"]]
    table = predictor.predict(profiles, posts, shortlist=wanted)
    assert table["influencer"].tolist() == [
        profiles.loc[0, "influencer"],
        profiles.loc[3, "influencer"],
        "nobody_at_all",
    ]
    ghost = table.set_index("influencer").loc["nobody_at_all"]
    assert ghost["status"] == STATUS_NO_PROFILE and np.isnan(ghost["predicted_er"])


def test_as_of_uses_only_earlier_posts(predictor, served):
    posts = served.data.posts
    counts = posts.groupby("influencer").size()
    name = counts[counts >= 3].index[0]
    profiles = served.data.profiles[served.data.profiles["influencer"] == name]
    own = posts[posts["influencer"] == name].sort_values("posted_at")
    cutoff = pd.Timestamp(
        own["posted_at"].iloc[-1]
    )  # the last post itself is excluded (strictly before)
    now = predictor.predict(profiles, own)
    back = predictor.predict(profiles, own, as_of=cutoff)
    assert back.loc[0, "predicted_er"] != now.loc[0, "predicted_er"]
    truncated = predictor.predict(
        profiles, own[pd.to_datetime(own["posted_at"], utc=True) < cutoff], as_of=cutoff
    )
    assert back.loc[0, "predicted_er"] == truncated.loc[0, "predicted_er"]
    # The same cutoff from an as_of column in the profiles (one cutoff per candidate).
    per_candidate = predictor.predict(profiles.assign(as_of=str(cutoff)), own)
    assert per_candidate.loc[0, "predicted_er"] == back.loc[0, "predicted_er"]
    assert per_candidate.loc[0, "as_of"] == cutoff.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_inputs_are_not_modified(predictor, candidates):
    profiles, posts = candidates
    p, q = profiles.copy(), posts.copy()
    broken = profiles.copy()
    broken.loc[0, "followers"] = "0"
    kept = broken.copy()
    predictor.predict(broken, posts)
    pd.testing.assert_frame_equal(broken, kept)
    pd.testing.assert_frame_equal(profiles, p)
    pd.testing.assert_frame_equal(posts, q)


# --------------------------------------------------------------------------- peers and reasons


@pytest.mark.parametrize(
    "value, quantiles, expected",
    [
        (-1.0, [0, 1, 2], 0.0),  # below every label
        (5.0, [0, 1, 2], 100.0),  # above every label
        (1.0, [0, 1, 2], 50.0),  # the median
        (0.5, [0, 1, 2], 25.0),  # interpolated
        (1.0, [0, 1, 1, 1, 2], 50.0),  # a tied block: its middle, not its edge
        (3.0, [3, 3, 3], 50.0),  # all labels equal
    ],
)
def test_percentile_in_quantile_table(value, quantiles, expected):
    assert percentile_in(np.array([value]), np.array(quantiles, dtype=float))[0] == pytest.approx(
        expected
    )


def test_peer_percentile_falls_back_to_all_examples(predictor):
    reference = predictor.metadata["peer_reference"]
    value = np.array([np.median(reference["*"])])
    got = predictor.peer_percentile(value, pd.Series(["mega"]), pd.Series(["no-such-niche"]))
    assert got[0] == pytest.approx(50.0, abs=2.0)


def test_a_silence_longer_than_any_in_training_is_not_extrapolated(predictor, candidates):
    # Scoring years after the data: days since the last post far beyond training's range. The
    # trees read every such value as the largest they saw, so 30 and 300 years predict alike.
    profiles, posts = candidates
    data = validate(profiles, posts)
    base = compute_features(
        data.profiles, data.posts, examples_at(data.profiles, pd.Timestamp("2019-06-01", tz="UTC"))
    )
    base = base[base["n_history_posts"] > 0]
    far = predictor.model.predict_features(base.assign(days_since_last_post=365.0 * 30))[
        "predicted_log_er"
    ]
    farther = predictor.model.predict_features(base.assign(days_since_last_post=365.0 * 300))[
        "predicted_log_er"
    ]
    np.testing.assert_array_equal(far.to_numpy(), farther.to_numpy())


def test_categories_are_reported_as_the_model_saw_them(predictor, candidates):
    profiles, posts = candidates
    renamed = profiles.assign(
        category=["crypto", "fashon", "Gaming", *profiles["category"].iloc[3:]]
    )
    table = predictor.predict(renamed, posts, "2020-01-01")
    # Rare or unseen names become 'other' (the model's vocabulary); close misspellings are mapped.
    assert table["category"].tolist()[:3] == ["other", "fashion", "other"]
    assert set(table["category"]) <= set(
        predictor.model.steps_.named_steps["vocabulary"].vocabulary_
    )
    assert not re.search(
        r"crypto|gaming", " ".join(table["reasons"])
    )  # reasons name the niche the model used
    before = predictor.predict(
        profiles.assign(category=["other", "fashion", "other", *profiles["category"].iloc[3:]]),
        posts,
        "2020-01-01",
    )
    np.testing.assert_array_equal(
        table["predicted_er"].to_numpy(), before["predicted_er"].to_numpy()
    )


def test_p_reach_and_percentiles_are_ordered_and_follow_the_target(predictor, candidates):
    profiles, posts = candidates
    at = pd.Timestamp("2019-01-01", tz="UTC")
    low = predictor.predict(profiles, posts, at, explain=False, target_engagements=10)
    high = predictor.predict(profiles, posts, at, explain=False, target_engagements=100_000)
    ok = low["status"].str.startswith("ok").to_numpy()
    assert ok.any()
    p10, p50, p90 = (low.loc[ok, f"engagements_p{q}"].to_numpy() for q in (10, 50, 90))
    assert (p10 <= p50).all() and (p50 <= p90).all()
    assert ((low.loc[ok, "p_reach"] >= 0) & (low.loc[ok, "p_reach"] <= 1)).all()
    assert (low.loc[ok, "p_reach"].to_numpy() >= high.loc[ok, "p_reach"].to_numpy()).all()
    assert (low.loc[ok, "target_engagements"] == 10).all()
    # A KPI below the 10th percentile is reached with probability at least 0.9 (and vice versa).
    at_p10 = predictor.predict(
        profiles,
        posts,
        at,
        explain=False,
        target_engagements=pd.Series(p10, index=low.loc[ok, "influencer"]),
    )
    assert (at_p10.loc[ok, "p_reach"] >= 0.88).all()
    # No target: no p_reach, the rest unchanged.
    plain = predictor.predict(profiles, posts, at, explain=False)
    assert plain["p_reach"].isna().all()
    np.testing.assert_array_equal(plain["predicted_er"].to_numpy(), low["predicted_er"].to_numpy())


def test_the_planned_post_is_named_in_the_output_with_what_the_forecast_uses(predictor, candidates):
    profiles, posts = candidates
    at = pd.Timestamp("2019-01-01", tz="UTC")
    usual = predictor.predict(profiles, posts, at, explain=False)
    carousel = predictor.predict(
        profiles, posts, at, explain=False, post_type="carousel", sponsored=True
    )
    ok = usual["status"].str.startswith("ok").to_numpy()
    assert carousel.loc[ok, "planned_post"].str.startswith("carousel, sponsored").all()
    assert usual.loc[ok, "planned_post"].str.contains("organic").all()
    # A model input: the forecast is for the planned post wherever the trees split on it.
    from features.aggregate import PLANNED_POST_FEATURES

    names_in = predictor.model.feature_names_
    assert set(PLANNED_POST_FEATURES) <= set(names_in)
    assert not carousel["planned_post"].str.contains("does not depend", na=False).any()
    booster = predictor.model.booster_
    used = booster.feature_importance("split", iteration=predictor.model.best_iteration_ or None)
    if any(used[names_in.index(f)] > 0 for f in PLANNED_POST_FEATURES):
        assert not np.allclose(carousel.loc[ok, "predicted_er"], usual.loc[ok, "predicted_er"])
    # Per influencer, as a shortlist column would give it.
    names = usual.loc[ok, "influencer"]
    one = predictor.predict(
        profiles, posts, at, explain=False, post_type=pd.Series(["video"], index=[names.iloc[0]])
    )
    assert one.loc[one["influencer"] == names.iloc[0], "planned_post"].iloc[0].startswith("video")
    support = predictor.metadata.get("planned_post_support") or {}
    assert support and all(
        {"video", "carousel", "image", "sponsored"} <= set(v) for v in support.values()
    )
