"""What data scientists read about a run: MLflow names
and groups, warnings, the champion gate, promote."""

from __future__ import annotations

import inspect
import json
import re
import shutil
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engage.cli import main
from features.contract import validate
from tests.model_fixtures import EMBEDDED, SmallData, train_small
from training.checks import MIN_CHECKED, quality_warnings, review
from training.gate import MIN_GATE_CREATORS, compare_on_unseen, creator_hashes
from training.tracking import EXPERIMENT_KIND_TAG, TRAINING_EXPERIMENT, metric_groups
from training.train import comparison_table

REPO = Path(__file__).resolve().parents[1]


def _block(mae: float, rho: float, n: int = 100, **extra: object) -> dict[str, object]:
    return {
        "mae_log_er": mae,
        "spearman": rho,
        "ndcg_at_10": 0.5,
        "coverage_80": 0.8,
        "interval_width_80": 1.0,
        "n": n,
        **extra,
    }


def _metrics() -> dict[str, object]:
    """Metrics in the shape training writes, with known winners and losers."""
    nan = float("nan")
    return {
        "model": _block(
            0.50,
            0.70,
            500,
            by_tier={
                "micro": {"coverage_80": 0.80, "interval_width_80": 1.0, "n": 300},
                "mega": {"coverage_80": 0.70, "interval_width_80": 1.0, "n": 200},
                "nano": {"coverage_80": 0.5, "interval_width_80": 1.0, "n": 3},
            },
        ),
        "baselines": {"persistence": _block(0.55, 0.72, 500), "ridge": _block(0.52, 0.60, 500)},
        "subsets": {
            "with_history": {"model": _block(0.40, 0.75, 300), "ridge": _block(0.39, 0.70, 300)},
            # An empty subset: every figure NaN, n 0 (TikTok's campaign runs have no cold starts).
            "cold_start": {
                "model": {**_block(nan, nan, 0), "by_tier": {}},
                "ridge": {**_block(nan, nan, 0), "by_tier": {}},
            },
            "latest_cold_start": {
                "model": _block(0.9, 0.1, 5),
                "ridge": _block(0.1, 0.9, 5),
            },  # too few to judge
        },
        "time_holdout": {
            "model": _block(0.6, 0.6, 200, by_tier={"micro": {"coverage_80": 0.86, "n": 150}}),
            "baselines": {"persistence": _block(0.7, 0.5, 200)},
            "holdout_from": "2019-01-01",
        },
        "forward": {
            "n_creators": 40,
            "model": {
                "mae_log_er": 0.47,
                "spearman": 0.88,
                "coverage_80_posts": 0.75,
                "coverage_80_mature_posts": 0.79,
                "coverage_80_mature_posts_90ci": [0.74, 0.84],
                # Young posts in the other key: the check reads the mature posts' coverage.
                "by_tier": {
                    "micro": {"coverage_80_posts": 0.80, "coverage_80_mature_posts": 0.74, "n": 30}
                },
            },
            "persistence": {"mae_log_er": 0.56, "spearman": 0.87},
            "mae_gain": 0.09,
            "mae_gain_90ci": [0.05, 0.12],
        },
        "n_examples": 500,
    }


# ---------------------------------------------------------------------------
# warnings and empty subsets


def test_losing_to_a_baseline_and_coverage_off_band_are_flagged():
    warnings = quality_warnings(_metrics())
    expected = [
        "grouped CV, all examples (n=500): model Spearman 0.700 loses to persistence (0.720)",
        "grouped CV, all examples: interval coverage "
        "0.700 in tier mega (n=200) is outside 0.77-0.83",
        "grouped CV, with history (n=300): model MAE 0.400 loses to ridge (0.390)",
        "time holdout: interval coverage 0.860 in tier micro (n=150) is outside 0.77-0.83",
        "forward protocol: interval coverage 0.740 in tier micro (n=30) is outside 0.77-0.83",
    ]
    assert warnings == expected
    # Not flagged: the model's wins, micro's 0.80, nano's 3 examples, the 5-example subset.
    assert not any("nano" in w or "latest cold start" in w for w in warnings)


def test_empty_subsets_are_dropped_and_the_table_prints_no_nan():
    metrics = review(_metrics())
    assert "cold_start" not in metrics["subsets"] and metrics["dropped_subsets"] == ["cold_start"]
    table = comparison_table(metrics, "engagement v3 @champion")
    assert table.splitlines()[0] == "engagement v3 @champion"
    assert not re.search(r"\bnan\b", table)
    assert "latest cold start" not in table  # 5 examples: below MIN_CHECKED, left to --metrics-out
    assert (
        f"{len(metrics['warnings'])} warning(s):" in table
        and "WARNING  grouped CV, with history (n=300): model MAE" in table
    )
    assert "no examples (left out): cold_start" in table
    assert MIN_CHECKED == 20


def test_on_a_terminal_the_comparison_is_rich_tables_with_the_same_figures(capsys, monkeypatch):
    import engage.model_commands
    from training.train import comparison_blocks

    metrics = review(_metrics())
    plain = comparison_table(metrics, "engagement v3 @champion")
    monkeypatch.setattr(engage.model_commands, "rich_stdout", lambda: True)
    monkeypatch.setenv("COLUMNS", "200")
    engage.model_commands.show_comparison(metrics, "engagement v3 @champion")
    shown = capsys.readouterr().out
    assert shown.splitlines()[0] == "engagement v3 @champion"
    for block in comparison_blocks(metrics):
        assert f"{block.name} (n={block.n})" in shown
    assert "│" in shown  # drawn as tables
    # The same figures as the plain text, every one of them.
    figure = r"-?\d+\.\d{3}\b"
    assert sorted(re.findall(figure, shown)) == sorted(re.findall(figure, plain))
    assert "WARNING  grouped CV, with history (n=300): model MAE" in shown


def test_metrics_are_grouped_by_evaluation_for_the_mlflow_ui():
    names = metric_groups(_metrics())
    assert names["cv/model.mae_log_er"] == 0.5
    assert names["cv/baselines.ridge.spearman"] == 0.6
    assert names["cv/with_history/ridge.mae_log_er"] == 0.39
    assert names["time_holdout/model.mae_log_er"] == 0.6
    assert names["forward/model.spearman"] == 0.88 and names["forward/mae_gain"] == 0.09
    assert {name.split("/")[0] for name in names} == {"cv", "time_holdout", "forward"}
    assert all(
        np.isfinite(value) for value in names.values()
    )  # NaN figures (empty subsets) are not logged


# --------------------------------------------------------------------------- the gate


def _gate_case(n_seen: int = 50, n_unseen: int = 50):
    """A champion that memorised its training creators (perfect on them, poor elsewhere), and a
    candidate that is fair everywhere: on all rows the champion looks better."""
    seen = [f"seen{i}" for i in range(n_seen)]
    unseen = [f"new{i}" for i in range(n_unseen)]
    influencers = pd.Series(seen + unseen)
    label = np.zeros(len(influencers))
    champion_pred = np.where(influencers.str.startswith("seen"), 0.0, 1.0)
    candidate_pred = np.full(len(influencers), 0.6)
    return influencers, label, champion_pred, candidate_pred, creator_hashes(pd.Series(seen))


def test_the_gate_compares_on_creators_the_champion_did_not_train_on():
    influencers, label, champion_pred, candidate_pred, champion_creators = _gate_case()
    # On every row, the champion's own creators included, it would look better (0.5 vs 0.6).
    assert np.mean(np.abs(champion_pred - label)) < np.mean(np.abs(candidate_pred - label))
    result = compare_on_unseen(
        lambda m: float(np.mean(np.abs(candidate_pred[m] - label[m]))),
        lambda m: float(np.mean(np.abs(champion_pred[m] - label[m]))),
        influencers,
        champion_creators,
        "champion v1",
    )
    assert result.compared and result.wins
    assert (result.n_creators, result.n_examples) == (50, 50)
    assert result.candidate_mae == pytest.approx(0.6) and result.champion_mae == pytest.approx(1.0)
    assert "on 50 examples of 50 creators champion v1 did not train on" in result.reason


@pytest.mark.parametrize(
    ("n_unseen", "record", "match"),
    [
        (
            MIN_GATE_CREATORS - 1,
            True,
            rf"only {MIN_GATE_CREATORS - 1} of the \d+ creators here are unseen by champion v1",
        ),  # champion trained on nearly all
        (
            50,
            False,
            "does not record which creators it was trained on",
        ),  # a champion saved before the gate
    ],
)
def test_the_gate_says_when_it_cannot_compare(n_unseen, record, match):
    influencers, label, champion_pred, candidate_pred, champion_creators = _gate_case(
        n_unseen=n_unseen
    )
    result = compare_on_unseen(
        lambda m: 0.1,
        lambda m: 0.9,
        influencers,
        champion_creators if record else None,
        "champion v1",
    )
    assert not result.compared and not result.wins
    assert re.search(match, result.reason)


def test_creator_hashes_are_stable_across_processes():
    # Saved in one process, compared in another: the hash must not depend on Python's hash seed.
    import os
    import subprocess
    import sys

    code = (
        "import pandas as pd; from training.gate import creator_hashes; "
        "print(list(creator_hashes(pd.Series(['ana', 'ben']))))"
    )
    runs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            cwd=REPO,
            env={**os.environ, "PYTHONHASHSEED": seed},
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert len(runs) == 1 and runs == {str(list(creator_hashes(pd.Series(["ana", "ben"])))) + "\n"}


# --------------------------------------------------------------------------- a real run in MLflow


def _store(result) -> tuple[str, Path]:
    folder = result.model_dir.parent.parent
    return f"sqlite:///{folder / 'mlflow.db'}", folder


def test_the_run_reads_well_in_the_mlflow_ui(trained, tmp_path):
    from mlflow import MlflowClient

    uri, _ = _store(trained)
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("engage")
    assert experiment.tags[EXPERIMENT_KIND_TAG] == TRAINING_EXPERIMENT == "custom_model_development"
    run = client.get_run(trained.tracking["run_id"])
    assert re.fullmatch(r"instagram posts \d{4}-\d\d-\d\d \d\d:\d\d UTC", run.info.run_name)
    groups = {name.split("/")[0] for name in run.data.metrics}
    assert groups == {"cv", "time_holdout", "forward"}, sorted(run.data.metrics)[:20]
    assert (
        "cv/model.mae_log_er" in run.data.metrics
        and "time_holdout/model.mae_log_er" in run.data.metrics
    )
    # The run spans the training: started before the model was fitted and saved.
    meta = json.loads((trained.model_dir / "metadata.json").read_text())
    saved = datetime.fromisoformat(meta["trained_at"]).timestamp() * 1000
    assert run.info.start_time < saved - 1000 and run.info.end_time > saved
    assert run.info.status == "FINISHED"
    version = client.get_model_version("engagement", trained.tracking["model_version"])
    assert (
        "grouped CV: model MAE" in version.description
        and f"{trained.metrics['model']['mae_log_er']:.3f}" in version.description
    )
    assert version.tags["alias_reason"] == trained.tracking["alias_reason"]
    assert isinstance(trained.metrics["warnings"], list)
    logged = json.loads(
        Path(client.download_artifacts(run.info.run_id, "metrics.json", str(tmp_path))).read_text()
    )
    assert logged["warnings"] == trained.metrics["warnings"]


def test_a_run_that_fails_during_the_evaluations_is_in_mlflow_as_failed(
    small_data: SmallData, tmp_path, monkeypatch
):
    """The run starts before the evaluations: a failure in cross-validation leaves a FAILED run
    that shows what it was given, and no model."""
    from mlflow import MlflowClient

    from tests.model_fixtures import fast_config
    from training import train as train_module

    def broken(*args, **kwargs):
        raise RuntimeError("fold 1 ran out of memory")

    monkeypatch.setattr(train_module, "cross_validate", broken)
    config = fast_config(tmp_path)
    clean = validate(
        small_data.profiles.head(300),
        small_data.posts[
            small_data.posts["influencer"].isin(small_data.profiles["influencer"].head(300))
        ],
    )
    with pytest.raises(RuntimeError, match="out of memory"):
        train_module.run_training(
            clean,
            {"profiles": small_data.profiles_path, "posts": small_data.posts_path},
            config,
            progress=lambda _: None,
        )
    client = MlflowClient(tracking_uri=config.tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("engage").experiment_id])
    assert run.info.status == "FAILED" and run.info.run_name.startswith("instagram posts ")
    assert run.data.params["data_fingerprint"] and run.data.params["n_examples"]
    assert {d.dataset.name for d in run.inputs.dataset_inputs} == {"profiles", "posts"}
    assert not (tmp_path / "models").exists() or not [
        p for p in (tmp_path / "models").iterdir() if not p.name.startswith(".")
    ]


def test_plots_state_n_per_group(trained, tmp_path, monkeypatch):
    from features.artifact import load_artifact
    from training import plots

    texts: dict[str, list[str]] = {}

    def capture(fig, path):
        found = [t.get_text() for ax in fig.axes for t in [ax.title, *ax.get_xticklabels()]]
        found += [
            t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()
        ]
        texts[Path(path).stem] = found
        return path

    monkeypatch.setattr(plots, "_save", capture)
    model = load_artifact(trained.model_dir)
    plots.all_plots(model, trained.oof, trained.metrics, tmp_path, 0.8)
    n_cold = int((trained.oof["n_history_posts"] == 0).sum())
    assert f"cold start (n={n_cold})" in texts["predicted_vs_actual"]
    assert any(re.fullmatch(r"micro\nn=\d+", t) for t in texts["coverage_by_tier"])
    assert any(re.fullmatch(r"\w+\nn=\d+", t) for t in texts["residuals_by_niche"])
    assert any(f"n={len(trained.oof)}" in t for t in texts["predicted_vs_actual"])


def _campaigns(data: SmallData, folder: Path) -> Path:
    """Campaign results: each creator's latest two posts
    that have an earlier one, as a campaigns table."""
    posts = data.posts.assign(
        t=pd.to_datetime(data.posts["posted_at"], utc=True, format="ISO8601")
    ).sort_values(["influencer", "t"])
    posts = posts[posts.groupby("influencer").cumcount() >= 1]
    latest = posts.groupby("influencer").tail(2)
    table = latest.rename(columns={"post_id": "campaign_id"})[
        ["influencer", "campaign_id", "posted_at", "likes", "comments"]
    ]
    path = folder / "campaigns.csv"
    table.to_csv(path, index=False)
    return path


@pytest.mark.slow
def test_a_campaigns_run_is_visible_as_one(small_data: SmallData, trained, tmp_path):
    from mlflow import MlflowClient

    from features.contract import read_table
    from tests.model_fixtures import fast_config
    from training.train import file_fingerprint, run_training

    campaigns = _campaigns(small_data, tmp_path)
    config = fast_config(tmp_path)
    result = run_training(
        validate(small_data.profiles, small_data.posts),
        {"profiles": small_data.profiles_path, "posts": small_data.posts_path},
        config,
        campaigns_path=campaigns,
        progress=lambda _: None,
    )
    meta = json.loads((result.model_dir / "metadata.json").read_text())
    posts_only = json.loads((trained.model_dir / "metadata.json").read_text())
    fingerprint = file_fingerprint([campaigns])
    assert meta["training_mode"] == "campaigns" and meta["inputs"]["campaigns"] == {
        "path": str(campaigns),
        "fingerprint": fingerprint,
        "rows": len(read_table(campaigns)),
    }
    assert (
        meta["data_fingerprint"] != posts_only["data_fingerprint"]
    )  # same profiles and posts, plus campaigns
    client = MlflowClient(tracking_uri=config.tracking_uri)
    run = client.get_run(result.tracking["run_id"])
    assert (
        run.data.params["training_mode"] == "campaigns"
        and run.data.params["campaigns_fingerprint"] == fingerprint
    )
    assert (
        run.data.params["campaigns"] == str(campaigns)
        and run.data.params["data_fingerprint"] == meta["data_fingerprint"]
    )
    inputs = {d.dataset.name: d.dataset for d in run.inputs.dataset_inputs}
    assert (
        set(inputs) == {"profiles", "posts", "campaigns"}
        and inputs["campaigns"].digest == fingerprint[:8]
    )
    assert run.data.tags["data.campaigns.fingerprint"] == fingerprint
    assert " campaigns " in run.info.run_name
    assert "forward" not in result.metrics  # the forward protocol is for post histories


# --------------------------------------------------------------------------- evaluate, promote


def test_evaluate_names_the_registered_version(trained, small_data: SmallData, tmp_path, capsys):
    uri, _ = _store(trained)
    out = tmp_path / "m.json"
    v = trained.tracking["model_version"]
    for ref in ("models:/engagement@champion", f"models:/engagement/{v}", str(trained.model_dir)):
        code = main(
            [
                "evaluate",
                "--model",
                ref,
                "--tracking-uri",
                uri,
                "--profiles",
                str(small_data.profiles_path),
                "--posts",
                str(small_data.posts_path),
                "--metrics-out",
                str(out),
            ]
        )
        assert code == 0
        printed = capsys.readouterr().out
        assert printed.splitlines()[0].startswith(
            f"engagement v{v} @champion (saved model {trained.model_dir.name}) on "
        )
        assert (
            "engage-model-" not in printed and "/tmp" not in printed.splitlines()[0]
        )  # no temporary copy's path
        assert not re.search(r"\bnan\b", printed)
        metrics = json.loads(out.read_text())
        assert metrics["evaluated_model"]["name"] == f"engagement v{v} @champion" and isinstance(
            metrics["warnings"], list
        )


def _disjoint_slice(exclude: set[str], n: int, seed: int, folder: Path) -> SmallData:
    """Creators with posts from the embedded data, none of them in ``exclude``."""
    profiles = pd.read_csv(EMBEDDED / "profiles.csv.gz", dtype=str, keep_default_na=False)
    posts = pd.read_csv(EMBEDDED / "posts.csv.gz", dtype=str, keep_default_na=False)
    pool = profiles[
        profiles["influencer"].isin(posts["influencer"]) & ~profiles["influencer"].isin(exclude)
    ]
    chosen = pool.sample(n, random_state=seed).reset_index(drop=True)
    chosen_posts = posts[posts["influencer"].isin(chosen["influencer"])].reset_index(drop=True)
    folder.mkdir(parents=True, exist_ok=True)
    chosen.to_csv(folder / "profiles.csv", index=False)
    chosen_posts.to_csv(folder / "posts.csv", index=False)
    return SmallData(chosen, chosen_posts, folder / "profiles.csv", folder / "posts.csv")


@pytest.mark.slow
def test_promote_moves_the_champion_only_with_its_checks(
    small_data: SmallData, trained, tmp_path, capsys
):
    from mlflow import MlflowClient

    folder = tmp_path / "store"
    shutil.copytree(trained.model_dir.parent.parent, folder)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    seen = set(small_data.profiles["influencer"])
    other = _disjoint_slice(seen, 800, 1, tmp_path / "other")
    second = train_small(folder, other, num_boost_round=80)
    # The second run's holdout creators are none of the champion's: the gate compared, and said so.
    assert re.search(
        r"time holdout MAE [\d.]+ (beats|does not beat) champion v1 \([\d.]+\) "
        r"on \d+ examples of \d+ creators champion v1 did not train on",
        second.tracking["alias_reason"],
    )
    client = MlflowClient(tracking_uri=uri)

    def champion_now() -> str:
        return str(client.get_model_version_by_alias("engagement", "champion").version)

    champion = champion_now()
    candidate = "2" if champion == "1" else "1"

    def promote(*extra: str, data: SmallData | None = None) -> tuple[int, str]:
        paths = (
            ["--profiles", str(data.profiles_path), "--posts", str(data.posts_path)] if data else []
        )
        code = main(["promote", *extra, "--tracking-uri", uri, *paths])
        captured = capsys.readouterr()
        return code, captured.out + captured.err

    # Bad requests: exit 2, nothing moves.
    assert promote("9")[0] == 2
    code, text = promote(candidate, "--force")
    assert code == 2 and "--force needs --reason" in text
    # On the first model's own creators the gate cannot compare: it says so and keeps the champion.
    code, text = promote(candidate, data=small_data)
    assert code == 2 and "cannot compare" in text and "--force --reason" in text, text
    assert champion_now() == champion
    # On creators neither model saw, the comparison decides.
    fresh = _disjoint_slice(seen | set(other.profiles["influencer"]), 400, 2, tmp_path / "fresh")
    code, text = promote(candidate, data=fresh)
    moved = champion_now() == candidate
    assert re.search(r"creators neither model trained on", text), text
    assert (code == 0 and moved and "beats" in text) or (
        code == 2 and not moved and "does not beat" in text
    )
    # --force with a reason: moved, and the reason recorded on the version.
    target = champion if moved else candidate
    code, text = promote(target, "--force", "--reason", "rollback after a bad week")
    assert code == 0 and champion_now() == target
    tags = client.get_model_version("engagement", target).tags
    assert (
        tags["alias_reason"] == "promoted with --force: rollback after a bad week"
        and tags["previous_champion"]
    )
    assert (
        promote(target, "--force", "--reason", "again")[0] == 0
    )  # already champion: nothing changes


def test_promote_refuses_a_version_whose_files_were_changed(trained, capsys):
    from mlflow import MlflowClient

    uri, _ = _store(trained)
    client = MlflowClient(tracking_uri=uri)
    version = client.get_model_version("engagement", trained.tracking["model_version"])
    model_id = (
        trained.tracking["model_uri"].removeprefix("models:/").strip("/")
    )  # the logged model of v1
    artifacts = Path(client.get_logged_model(model_id).artifact_location.removeprefix("file://"))
    logged = next(artifacts.rglob("metadata.json"))
    original = logged.read_bytes()
    try:
        logged.write_bytes(original.replace(b'"n_examples"', b'"n_examples" ', 1))
        code = main(
            ["promote", str(version.version), "--force", "--reason", "x", "--tracking-uri", uri]
        )
    finally:
        logged.write_bytes(original)  # the session's model stays intact for other tests
    err = capsys.readouterr().err
    assert code == 2 and "metadata.json" in err, err
    assert str(client.get_model_version_by_alias("engagement", "champion").version) == str(
        version.version
    )


# --------------------------------------------------------------------------- ports


def test_serve_and_the_mlflow_ui_do_not_share_a_default_port():
    from engage.serve_commands import SERVE_PORT, serve

    assert inspect.signature(serve).parameters["port"].default == SERVE_PORT
    makefile = (REPO / "Makefile").read_text()
    ui_port = int(re.search(r"^MLFLOW_UI_PORT \?= (\d+)$", makefile, re.M).group(1))
    assert "--port $(MLFLOW_UI_PORT)" in makefile
    assert ui_port != SERVE_PORT
