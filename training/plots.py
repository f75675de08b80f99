"""Diagnostic plots logged with every training run
(PNG files, matplotlib's non-interactive backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from features.aggregate import TIERS  # noqa: E402
from features.outputs import atomic_output  # noqa: E402


def feature_importance(model: Any, path: Path, top: int = 25) -> Path:
    gain = (
        pd.Series(model.booster_.feature_importance("gain"), index=model.feature_names_)
        .sort_values()
        .tail(top)
    )
    fig, ax = plt.subplots(figsize=(7, 8))
    ax.barh(gain.index, gain.to_numpy(), color="#3b6ea8")
    ax.set_xlabel("total gain")
    ax.set_title(
        f"Feature importance (final model, n={model.metadata.get('n_examples', '?')} examples)"
    )
    return _save(fig, path)


def predicted_vs_actual(oof: pd.DataFrame, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 6))
    for has_history, colour in ((True, "#3b6ea8"), (False, "#d08c2f")):
        part = oof[(oof["n_history_posts"] > 0) == has_history]
        label = f"{'with history' if has_history else 'cold start'} (n={len(part)})"
        ax.scatter(
            part["model_pred"], part["actual_log_er"], s=3, alpha=0.25, color=colour, label=label
        )
    lims = (
        float(oof["actual_log_er"].quantile(0.005)),
        float(oof["actual_log_er"].quantile(0.995)),
    )
    ax.plot(lims, lims, color="black", lw=1)
    ax.set_xlim(lims)
    ax.set_ylim(lims)
    ax.set_xlabel("predicted log ER (out of fold)")
    ax.set_ylabel("actual log ER")
    ax.legend(markerscale=4)
    ax.set_title(f"Predicted against actual, grouped CV (n={len(oof)})")
    return _save(fig, path)


def coverage_by_tier(metrics: dict[str, Any], path: Path, nominal: float = 0.8) -> Path:
    by_tier = metrics["model"]["by_tier"]
    tiers = [t for t in TIERS if t in by_tier]
    coverage = [by_tier[t]["coverage_80"] for t in tiers]
    width = [by_tier[t]["interval_width_80"] for t in tiers]
    labels = [f"{t}\nn={by_tier[t].get('n', '?')}" for t in tiers]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.bar(labels, coverage, color="#3b6ea8")
    ax1.axhline(nominal, color="black", ls="--", lw=1, label=f"nominal {nominal:.0%}")
    ax1.set_ylim(0, 1)
    ax1.set_title("Interval coverage by tier (grouped CV)")
    ax1.legend()
    ax2.bar(labels, width, color="#7a9cc6")
    ax2.set_title("Median interval width (log ER)")
    return _save(fig, path)


def residuals_by_niche(oof: pd.DataFrame, path: Path) -> Path:
    residual = oof["actual_log_er"] - oof["model_pred"]
    niches = sorted(oof["category"].astype(str).unique())
    data = [residual[oof["category"].astype(str) == n].to_numpy() for n in niches]
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.boxplot(
        data,
        tick_labels=[f"{n}\nn={len(d)}" for n, d in zip(niches, data, strict=True)],
        showfliers=False,
    )
    ax.axhline(0, color="black", lw=1)
    ax.set_ylabel("actual - predicted log ER")
    ax.set_title("Residuals by niche (grouped CV)")
    return _save(fig, path)


def _save(fig: Any, path: Path) -> Path:
    try:
        fig.tight_layout()
        with atomic_output(path) as temp:
            fig.savefig(temp, dpi=110, format=Path(path).suffix.lstrip(".") or "png")
    finally:
        plt.close(fig)
    return path


def all_plots(
    model: Any, oof: pd.DataFrame, metrics: dict[str, Any], folder: Path, nominal: float
) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [
        feature_importance(model, folder / "feature_importance.png"),
        predicted_vs_actual(oof, folder / "predicted_vs_actual.png"),
        coverage_by_tier(metrics, folder / "coverage_by_tier.png", nominal),
        residuals_by_niche(oof, folder / "residuals_by_niche.png"),
    ]
