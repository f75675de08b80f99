"""A whole training run (training/train.py): saved, logged, champion or challenger, with no
credential stored."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from features.artifact import load_artifact
from tests.model_fixtures import SmallData

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
