"""Training: leakage-safe examples, metrics, conformal intervals, artifacts, MLflow and the CLI."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from engage.cli import main
from features.artifact import (
    MODEL_FORMAT,
    ArtifactError,
    complete_versions,
    load_artifact,
    resolve_model_dir,
    save_artifact,
    sign_folder,
)
from features.contract import DataValidationError, validate
from features.pipeline import ConformalInterval
from tests.model_fixtures import SmallData, fast_config
from training.evaluation import cross_validate, time_split
from training.examples import ExampleSet, example_weights, post_examples, validate_campaigns
from training.metrics import ndcg_at_10, point_metrics

NOW = pd.Timestamp("2020-06-01", tz="UTC")


def _posts() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "influencer": ["a", "a", "a", "b", "c", "c"],
            "post_id": ["a1", "a2", "a3", "b1", "c1", "c2"],
            "posted_at": [
                "2020-01-01",
                "2020-01-05",
                "2020-01-09",
                "2020-01-02",
                "2020-01-03",
                "2020-01-04",
            ],
            "likes": ["100", "200", "300", "50", "10", "0"],
            "comments": ["10", "20", "30", "5", "1", "0"],
            "hashtags": ["x|y", "y", "z", "w", "v", ""],
            "caption": ["one", "two", "three", "four", "five", "six"],
        }
    )


def _profiles() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "influencer": ["a", "b", "c", "d"],
            "followers": ["1000", "20000", "300", "5000"],
            "category": ["food", "travel", "pet", "food"],
        }
    )


def _examples(posts: pd.DataFrame) -> ExampleSet:
    data = validate(_profiles(), posts, now=NOW)
    return post_examples(data.profiles, data.posts)


# --------------------------------------------------------------------------- examples


def test_every_mature_post_is_a_target_and_history_is_strictly_earlier():
    ex = _examples(_posts())
    # d has no posts: no label, no example. a3 (Jan 9) is the scrape's newest post, younger than
    # 3 days at the scrape: no target. Every other post is one, with the posts before it.
    assert list(zip(ex.base["influencer"], ex.base["n_history_posts"], strict=True)) == [
        ("a", 0),
        ("a", 1),
        ("b", 0),
        ("c", 0),
        ("c", 1),
    ]
    # label of a's second example = log((200 + 20 + 1) / 1000)
    assert ex.label[1] == pytest.approx(np.log(221 / 1000))
    assert ex.target_er[1] == pytest.approx(220 / 1000)


def test_each_influencer_weighs_the_same_in_total():
    ex = _examples(_posts())  # a and c have 2 examples, b one
    totals = pd.Series(ex.weight).groupby(ex.base["influencer"].to_numpy()).sum()
    assert totals.to_dict() == pytest.approx({"a": 5 / 3, "b": 5 / 3, "c": 5 / 3})
    assert ex.weight.mean() == pytest.approx(1.0)


def test_each_platform_weighs_the_same_in_total():
    base = pd.DataFrame(
        {
            "influencer": ["a", "a", "b", "c", "d"],
            "platform": ["instagram", "instagram", "instagram", "instagram", "tiktok"],
        }
    )
    weight = pd.Series(example_weights(base), index=base["influencer"])
    by_platform = weight.groupby(base["platform"].to_numpy()).sum()
    assert by_platform["instagram"] == pytest.approx(by_platform["tiktok"])
    assert weight.groupby(level=0).sum()[["a", "b", "c"]].nunique() == 1  # equal within a platform


def test_young_posts_are_no_targets():
    posts = _posts()
    # A post on Jan 19 moves the scrape to Jan 19: a3 (Jan 9) is then 10 days old, so a target,
    # and the new post itself is too young to be one.
    posts.loc[len(posts)] = ["b", "b2", "2020-01-19", "1", "0", "", ""]
    ex = _examples(posts)
    assert (ex.target_time == pd.Timestamp("2020-01-09", tz="UTC")).any()
    assert not (ex.target_time == pd.Timestamp("2020-01-19", tz="UTC")).any()


def test_changing_the_target_post_changes_no_feature():
    """The target post's likes, comments, caption and hashtags must never be inputs."""
    data = validate(_profiles(), _posts(), now=NOW)
    before = post_examples(data.profiles, data.posts, targets_per_influencer=1)
    changed = _posts()
    target = changed["post_id"].isin(["a2", "b1", "c2"])  # each influencer's latest mature post
    changed.loc[target, "likes"] = "999999"
    changed.loc[target, "comments"] = "77777"
    changed.loc[target, "caption"] = "a completely different caption"
    changed.loc[target, "hashtags"] = "leak|leak|leak"
    data = validate(_profiles(), changed, now=NOW)
    after = post_examples(data.profiles, data.posts, targets_per_influencer=1)
    pd.testing.assert_frame_equal(before.base, after.base)
    assert not np.allclose(before.label, after.label)


def test_rolling_cutoffs_keep_the_latest_n_targets():
    data = validate(_profiles(), _posts(), now=NOW)
    ex = post_examples(data.profiles, data.posts, targets_per_influencer=1)
    assert sorted(ex.base["influencer"]) == ["a", "b", "c"]
    a = ex.base[ex.base["influencer"] == "a"]
    assert list(a["n_history_posts"]) == [1]  # a2, the latest mature post


def test_time_split_keeps_holdout_influencers_out_of_training():
    data = validate(_profiles(), _posts(), now=NOW)
    ex = post_examples(data.profiles, data.posts, targets_per_influencer=3)
    train, test = time_split(ex, 0.4)
    assert not set(ex.base["influencer"][train]) & set(ex.base["influencer"][test])
    assert ex.target_time[test].min() >= ex.target_time[train].max()


# --------------------------------------------------------------------------- campaigns


@pytest.mark.parametrize(
    ("frame", "match"),
    [
        # a required column under another tool's name: suggest the rename
        (
            pd.DataFrame(
                {
                    "influencer": ["a"],
                    "campaign_id": ["x"],
                    "posted_at": ["2020-01-01"],
                    "like_count": ["1"],
                    "comments": ["1"],
                }
            ),
            "did you mean 'like_count'",
        ),
        # campaign for an influencer without a profile
        (
            pd.DataFrame(
                {
                    "influencer": ["zz"],
                    "campaign_id": ["x"],
                    "posted_at": ["2020-01-01"],
                    "likes": ["1"],
                    "comments": ["1"],
                }
            ),
            "campaign influencer has no profile",
        ),
        # negative count
        (
            pd.DataFrame(
                {
                    "influencer": ["a"],
                    "campaign_id": ["x"],
                    "posted_at": ["2020-01-01"],
                    "likes": ["-1"],
                    "comments": ["1"],
                }
            ),
            "negative count",
        ),
        # the same campaign twice for one influencer
        (
            pd.DataFrame(
                {
                    "influencer": ["a", "a"],
                    "campaign_id": ["x", "x"],
                    "posted_at": ["2020-01-01"] * 2,
                    "likes": ["1", "2"],
                    "comments": ["1", "1"],
                }
            ),
            "duplicate",
        ),
    ],
)
def test_bad_campaign_tables_are_refused_with_file_and_column(frame, match):
    with pytest.raises(DataValidationError, match=match) as info:
        validate_campaigns(frame, "campaigns.csv", pd.Series(["a", "b"]))
    assert "campaigns.csv" in str(info.value)


# --------------------------------------------------------------------------- metrics and intervals


def test_metrics_on_a_perfect_and_a_reversed_ranking():
    rng = np.random.default_rng(0)
    actual = rng.normal(size=200)
    niche = np.repeat(["a", "b"], 100)
    perfect = point_metrics(actual, actual, niche)
    assert perfect["mae_log_er"] == 0 and perfect["spearman"] == pytest.approx(1.0)
    assert perfect["ndcg_at_10"] == pytest.approx(1.0)
    assert ndcg_at_10(actual, -actual, niche) < 0.8


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


def test_small_cold_start_groups_fall_back_to_every_tiers_cold_starts_then_their_tier():
    groups = pd.Series(["micro/history"] * 100 + ["micro/cold"] * 5 + ["mega/cold"] * 40)
    interval = ConformalInterval(0.8).fit(np.linspace(-1, 1, 145), groups)
    assert "micro/cold" not in interval.offsets_
    assert interval.group_sizes_["cold"] == 45
    assert interval.offsets_for("micro/cold") == interval.offsets_["cold"]
    few = pd.Series(["micro/history"] * 100 + ["micro/cold"] * 5)
    interval = ConformalInterval(0.8).fit(np.linspace(-1, 1, 105), few)
    assert interval.offsets_for("micro/cold") == interval.offsets_["micro"]


# --------------------------------------------------------------------------- artifacts


class _Thing:
    metadata: dict = {}


def test_artifact_round_trip_and_tamper_detection(tmp_path):
    folder = save_artifact(
        _Thing(), tmp_path, {"note": "x"}, registry={"registered_model": "engagement"}
    )
    assert resolve_model_dir("latest", tmp_path) == folder
    assert isinstance(load_artifact(folder), _Thing)
    data = bytearray((folder / "model.joblib").read_bytes())
    data[len(data) // 2] ^= 0xFF  # flip one byte
    (folder / "model.joblib").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="does not match its SHA-256"):
        load_artifact(folder)


def test_artifact_from_other_library_versions_is_refused_before_unpickling(tmp_path):
    folder = save_artifact(_Thing(), tmp_path, {})
    meta = json.loads((folder / "metadata.json").read_text())
    meta["library_versions"]["lightgbm"] = "0.0.1"
    (folder / "metadata.json").write_text(json.dumps(meta))
    (folder / "model.joblib").write_bytes(b"not a pickle: must never be read")
    sign_folder(folder)  # signed by the key holder, so only the version check can catch it
    with pytest.raises(ArtifactError, match=r"lightgbm 0\.0\.1 \(saved\)"):
        load_artifact(folder)


@pytest.mark.parametrize(
    ("edit", "saved"),
    [
        (lambda meta: meta.pop("model_format"), 1),  # saved before the format was recorded
        (lambda meta: meta.update(model_format=99), 99),  # saved by a newer engage
    ],
)
def test_artifact_of_another_model_format_is_refused_before_unpickling(tmp_path, edit, saved):
    folder = save_artifact(_Thing(), tmp_path, {})
    meta = json.loads((folder / "metadata.json").read_text())
    edit(meta)
    (folder / "metadata.json").write_text(json.dumps(meta))
    (folder / "model.joblib").write_bytes(b"not a pickle: must never be read")
    sign_folder(folder)
    with pytest.raises(
        ArtifactError, match=rf"model format {saved}, this one reads {MODEL_FORMAT}.*Retrain"
    ):
        load_artifact(folder)


def test_missing_manifest_and_half_written_folders_are_never_latest(tmp_path):
    good = save_artifact(_Thing(), tmp_path, {})
    (tmp_path / ".tmp-99999999T000000Z-abc").mkdir()  # an interrupted save
    newer_without_manifest = tmp_path / "99999999T000000Z-zzz"
    newer_without_manifest.mkdir()
    assert complete_versions(tmp_path) == [good]
    with pytest.raises(ArtifactError, match="MANIFEST.json is missing"):
        load_artifact(newer_without_manifest)


def test_a_failing_save_leaves_nothing_behind(tmp_path):
    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        save_artifact(Unpicklable(), tmp_path, {})
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- end to end


def test_training_run_saves_logs_and_beats_the_median_baseline(trained):
    metrics = trained.metrics
    for block in (metrics["model"], *metrics["baselines"].values()):
        for key in ("mae_log_er", "spearman", "ndcg_at_10", "coverage_80", "interval_width_80"):
            assert np.isfinite(block[key])
    assert set(metrics["baselines"]) >= {"tier_niche_median", "persistence", "ridge"}
    assert set(metrics["subsets"]["with_history"]) >= {"model", "persistence", "tier_niche_median"}
    assert set(metrics["subsets"]["cold_start"]) >= {"model", "tier_niche_median"}
    # Even the small fast model must rank better than a benchmark table.
    assert metrics["model"]["spearman"] > metrics["baselines"]["tier_niche_median"]["spearman"]
    assert sorted(p.name for p in trained.model_dir.iterdir()) == [
        "MANIFEST.json",
        "metadata.json",
        "model.joblib",
        "registry.json",
        "training_creators.npy",
    ]
    meta = json.loads((trained.model_dir / "metadata.json").read_text())
    assert (
        meta["feature_names"] and "engagement_rate_definition" in meta and meta["data_fingerprint"]
    )
    assert trained.tracking["alias"] == "champion"
    assert "forward" in metrics  # the forward protocol ran (or says why it could not)


def test_the_saved_model_predicts_from_raw_tables(trained, small_data: SmallData):
    model = load_artifact(trained.model_dir)
    out = model.predict(small_data.profiles, small_data.posts)
    assert len(out) == len(small_data.profiles)
    assert (out["er_low"] <= out["predicted_er"]).all() and (
        out["predicted_er"] <= out["er_high"]
    ).all()


def test_same_seed_same_metrics(small_data: SmallData, tmp_path):
    clean = validate(small_data.profiles, small_data.posts)
    ex = post_examples(clean.profiles, clean.posts)
    config = fast_config(tmp_path)
    first, _ = cross_validate(ex, config)
    second, _ = cross_validate(ex, config)
    assert first == second


def test_a_counting_progress_hook_gets_every_fold(small_data: SmallData, tmp_path):
    from training.evaluation import CV_FOLDS
    from training.train import ProgressPrinter

    clean = validate(small_data.profiles, small_data.posts)
    ex = post_examples(clean.profiles, clean.posts)
    config = fast_config(tmp_path)
    steps: list[tuple[str, int, int]] = []
    messages: list[str] = []

    class Counting(ProgressPrinter):
        def __call__(self, message: str) -> None:
            messages.append(message)

    counted, _ = cross_validate(ex, config, Counting(steps=lambda *step: steps.append(step)))
    assert steps == [(CV_FOLDS, k, config.n_folds) for k in range(config.n_folds + 1)]
    assert len(messages) == config.n_folds  # the messages as before
    assert counted == cross_validate(ex, config)[0]  # counting changes nothing


def test_a_counting_progress_hook_gets_every_tuning_trial(small_data: SmallData, tmp_path):
    from training.evaluation import fit_model
    from training.train import ProgressPrinter
    from training.tuning import TUNING_TRIALS

    clean = validate(small_data.profiles, small_data.posts)
    ex = post_examples(clean.profiles, clean.posts)
    config = fast_config(tmp_path, tune_trials=3, num_boost_round=30)
    steps: list[tuple[str, int, int]] = []
    counting = ProgressPrinter(stream=io.StringIO(), steps=lambda *step: steps.append(step))
    counted = fit_model(ex, config, progress=counting)
    assert steps == [(TUNING_TRIALS, k, 3) for k in range(4)]
    # counting changes nothing: the same trials pick the same parameters
    assert counted.metadata["lgbm_params"] == fit_model(ex, config).metadata["lgbm_params"]


@pytest.mark.slow
def test_second_run_is_challenger_unless_promoted(small_data: SmallData, trained, tmp_path):
    from tests.model_fixtures import train_small

    folder = tmp_path / "store"
    shutil.copytree(trained.model_dir.parent.parent, folder)  # same MLflow store and models
    again = train_small(folder, small_data)
    assert again.tracking["alias"] in ("champion", "challenger")
    assert again.tracking["alias_reason"]
    forced = train_small(folder, small_data, promote=True)
    assert forced.tracking["alias"] == "champion"
    assert int(forced.tracking["model_version"]) == int(again.tracking["model_version"]) + 1


def test_cli_evaluate_scores_a_saved_model(trained, small_data: SmallData, tmp_path, capsys):
    out = tmp_path / "metrics.json"
    code = main(
        [
            "evaluate",
            "--model",
            str(trained.model_dir),
            "--profiles",
            str(small_data.profiles_path),
            "--posts",
            str(small_data.posts_path),
            "--metrics-out",
            str(out),
            "--seed",
            "0",
        ]
    )
    assert code == 0
    metrics = json.loads(out.read_text())
    assert metrics["n_examples"] > 0 and "persistence" in metrics["baselines"]
    # The slice has few creators with 6+ posts: the forward protocol says so instead of guessing.
    assert (
        "model" in metrics["forward"] or "fewer than 10 creators" in metrics["forward"]["skipped"]
    )
    printed = capsys.readouterr().out
    assert "grouped CV" in printed and "forward protocol" in printed


def test_cli_train_refuses_bad_input_with_status_2(tmp_path, capsys):
    profiles = tmp_path / "p.csv"
    posts = tmp_path / "q.csv"
    pd.DataFrame({"influencer": ["a"], "followers": ["0"]}).to_csv(profiles, index=False)
    pd.DataFrame(
        {
            "influencer": ["a"],
            "post_id": ["1"],
            "posted_at": ["2020-01-01"],
            "like_count": ["1"],
            "comments": ["1"],
        }
    ).to_csv(posts, index=False)
    code = main(
        [
            "train",
            "--profiles",
            str(profiles),
            "--posts",
            str(posts),
            "--models-dir",
            str(tmp_path / "m"),
            "--tracking-uri",
            f"sqlite:///{tmp_path / 'db.sqlite'}",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "did you mean 'like_count'" in err  # the fatal problem
    assert (
        "NOTE  " in err
        and "rows 1: zero followers: engagement rate is undefined -> set aside" in err
    )  # handled, listed too
    assert not (tmp_path / "m").exists()  # nothing half-written


def test_cli_evaluate_with_an_unknown_model_reference(tmp_path, capsys):
    code = main(["evaluate", "--model", str(tmp_path / "nope")])
    assert code == 2
    assert "no such model folder" in capsys.readouterr().err


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


def test_p_reach_is_calibrated_on_fresh_rows_of_each_group():
    # Of rows given p_reach about p, about p reach the target; per group, with different spreads.
    from training.metrics import reach_calibration

    rng = np.random.default_rng(4)
    groups = pd.Series(np.repeat(["nano/short", "mega/long"], 5000))
    scale = np.where(groups == "nano/short", 2.0, 0.5)
    interval = ConformalInterval(0.8).fit(rng.normal(size=10000) * scale, groups)
    codes, names = pd.factorize(groups)
    predicted = rng.normal(size=10000)
    actual = predicted + rng.normal(size=10000) * scale
    threshold = predicted + rng.uniform(-2, 2, size=10000)
    p = interval.prob_at_least_by_code(predicted, codes, list(names), threshold)
    report = reach_calibration(p, actual >= threshold, groups.str.split("/").str[0].to_numpy())
    assert report["calibration_error"] < 0.03
    assert all(v["calibration_error"] < 0.05 for v in report["by_tier"].values())


def test_the_forecast_is_for_the_planned_post_where_training_saw_such_posts():
    """Sponsored posts engage e times more than the creator's organic ones in these data: a
    forecast for a sponsored post is higher than one for an organic post, for the same creator
    at the same time, and by about that much."""
    from features.aggregate import compute_features, examples_at
    from training.config import TrainConfig
    from training.evaluation import fit_model

    rng = np.random.default_rng(3)
    profiles, posts = [], []
    for i in range(240):
        name = f"s{i:03d}"
        followers = int(rng.integers(5_000, 500_000))
        level = rng.normal(np.log(0.03), 0.8)
        profiles.append({"influencer": name, "followers": followers, "category": "food"})
        for j in range(12):
            sponsored = bool(rng.random() < 0.35)
            rate = np.exp(level + 1.0 * sponsored + rng.normal(0, 0.2))
            posts.append(
                {
                    "influencer": name,
                    "post_id": f"{name}-{j}",
                    "posted_at": pd.Timestamp("2020-01-01", tz="UTC") + pd.Timedelta(days=5 * j),
                    "likes": int(rate * followers),
                    "comments": int(rate * followers / 20),
                    "is_sponsored": sponsored,
                }
            )
    data = validate(
        pd.DataFrame(profiles), pd.DataFrame(posts), now=pd.Timestamp("2021-01-01", tz="UTC")
    )
    examples = post_examples(data.profiles, data.posts)
    config = TrainConfig(n_topics=2, num_boost_round=300, early_stopping_rounds=30)
    model = fit_model(examples, config)
    at = examples_at(data.profiles, pd.Timestamp("2020-12-01", tz="UTC"))
    organic = compute_features(data.profiles, data.posts, at.assign(sponsored=False))
    paid = compute_features(data.profiles, data.posts, at.assign(sponsored=True))
    gap = model.predict_log(paid) - model.predict_log(organic)
    assert (gap >= 0).all() and 0.6 < float(np.median(gap)) < 1.3
