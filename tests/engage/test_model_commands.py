"""``engage train`` and ``engage evaluate`` (engage/model_commands.py), in process."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from engage.cli import main
from tests.model_fixtures import SmallData
from tests.training_fixtures import tracking_store, training_metrics
from training.checks import review
from training.train import comparison_table


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


def test_cli_evaluate_warns_of_a_platform_the_model_was_not_trained_on(
    trained, small_data: SmallData, tmp_path, capsys
):
    # The embedded-style model knows Instagram only; the same creators relabelled as TikTok
    # are forecast from their own level, and the metrics say why.
    profiles = tmp_path / "profiles.csv"
    pd.read_csv(small_data.profiles_path, dtype=str).assign(platform="tiktok").to_csv(
        profiles, index=False
    )
    out = tmp_path / "metrics.json"
    args = ["evaluate", "--model", str(trained.model_dir), "--posts", str(small_data.posts_path)]
    assert main([*args, "--profiles", str(profiles), "--metrics-out", str(out)]) == 0
    metrics = json.loads(out.read_text())
    assert metrics["unseen_platforms"] == {"tiktok": metrics["n_examples"]}
    assert any(w.startswith("platform tiktok (") for w in metrics["warnings"])
    assert "was not in the model's training" in capsys.readouterr().out
    plain = ["--profiles", str(small_data.profiles_path), "--metrics-out", str(out)]
    assert main([*args, *plain]) == 0
    assert "unseen_platforms" not in json.loads(out.read_text())


def test_cli_evaluate_warns_when_the_creators_engage_far_unlike_the_training_ones(
    trained, small_data: SmallData, tmp_path
):
    # The same creators with 5x the likes and comments: another population to this model.
    posts = tmp_path / "posts.csv"
    raw = pd.read_csv(small_data.posts_path, dtype=str, keep_default_na=False)
    for column in ("likes", "comments"):
        raw[column] = (raw[column].astype("int64") * 5).astype(str)
    raw.to_csv(posts, index=False)
    out = tmp_path / "metrics.json"
    args = ["evaluate", "--model", str(trained.model_dir), "--profiles"]
    args += [str(small_data.profiles_path), "--metrics-out", str(out)]
    assert main([*args, "--posts", str(posts)]) == 0
    metrics = json.loads(out.read_text())
    shift = metrics["level_vs_training_peers"]["instagram"]
    assert shift["ratio"] > 2.0
    assert any(
        "engage" in w and "retrain with creators like these" in w for w in metrics["warnings"]
    )
    # The creators the model was trained among sit level with their peers: no warning.
    assert main([*args, "--posts", str(small_data.posts_path)]) == 0
    metrics = json.loads(out.read_text())
    assert 0.8 < metrics["level_vs_training_peers"]["instagram"]["ratio"] < 1.25
    assert not any("retrain with creators like these" in w for w in metrics["warnings"])
    assert shift["ratio"] / metrics["level_vs_training_peers"]["instagram"]["ratio"] == (
        pytest.approx(5.0, rel=0.05)
    )


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


def test_on_a_terminal_the_comparison_is_rich_tables_with_the_same_figures(capsys, monkeypatch):
    import engage.model_commands
    from training.train import comparison_blocks

    metrics = review(training_metrics())
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


def test_cli_train_refuses_a_folder_tracking_store_before_any_work(
    small_data: SmallData, tmp_path, capsys
):
    """MLflow no longer writes a plain folder store by default: a clear status 2, not its
    traceback, and no model folder begun."""
    folder = tmp_path / "mlruns"
    folder.mkdir()
    code = main(
        [
            "train",
            "--profiles",
            str(small_data.profiles_path),
            "--posts",
            str(small_data.posts_path),
            "--models-dir",
            str(tmp_path / "m"),
            "--tracking-uri",
            str(folder),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert f"MLflow tracking store {folder} cannot be used" in err
    assert "pass --tracking-uri sqlite:///PATH" in err and "Traceback" not in err
    assert not (tmp_path / "m").exists() or not any((tmp_path / "m").iterdir())


# --------------------------------------------------------------------------- evaluate, promote


def test_evaluate_names_the_registered_version(trained, small_data: SmallData, tmp_path, capsys):
    uri, _ = tracking_store(trained)
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
