"""The run's plots (training/plots.py)."""

from __future__ import annotations

import re
from pathlib import Path


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
