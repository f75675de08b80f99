"""``engage promote VERSION``: move the champion alias with the checks training applies.

The version's MLflow copy is downloaded and checked against its signed manifest, then loaded
(model format, library versions) before anything else; the current champion is loaded the same
way. The candidate becomes champion only if its MAE is lower on examples of creators neither
model was trained on (:func:`training.gate.compare_on_unseen`), or with ``--force`` and a
reason, which is recorded on the version (tags ``alias_reason``, ``promoted_at``,
``previous_champion``) like every other alias decision.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from features.artifact import load_artifact, redact
from features.contract import ValidatedData
from features.registry import (
    download_verified,
    engage_folder,
    require_tracking_store,
    resolve_tracking_uri,
)
from training.examples import post_examples
from training.gate import compare_on_unseen, training_creators
from training.tracking import CHAMPION, store_lock


class PromotionRefused(ValueError):
    """The alias stays where it is; the message says why and what would move it."""


def _verified(
    client: Any, name: str, version: str, uri: str, folder: Path
) -> tuple[Any, np.ndarray | None]:
    """Download ``name`` ``version``, check its signed
    files, load it; with its training creators."""
    ref = f"models:/{name}/{version}"
    folder.mkdir(parents=True, exist_ok=True)
    root = download_verified(ref, uri, folder)
    engage = engage_folder(ref, root)
    return load_artifact(engage), training_creators(engage)


def promote(
    version: str,
    data: ValidatedData | None,
    *,
    registered_model: str = "engagement",
    tracking_uri: str | None = None,
    reason: str | None = None,
) -> str:
    """Make ``version`` the champion if it beats the
    current one on ``data`` (or ``reason`` forces it).

    Returns what was done, as a sentence. Raises :class:`PromotionRefused` when the gate keeps
    the champion, and :class:`features.artifact.ArtifactError` when a model's files fail their
    checks.
    """
    from mlflow import MlflowClient

    uri = resolve_tracking_uri(tracking_uri)
    require_tracking_store(uri)
    client = MlflowClient(tracking_uri=uri)
    name, version = registered_model, str(version).strip().lstrip("v")
    with store_lock(uri), tempfile.TemporaryDirectory(prefix="engage-promote-") as tmp:
        try:
            client.get_model_version(name, version)
        except Exception:
            raise PromotionRefused(
                f"{name} v{version}: no such registered version in {redact(uri)}"
            ) from None
        candidate, candidate_creators = _verified(
            client, name, version, uri, Path(tmp) / "candidate"
        )
        try:
            current = client.get_model_version_by_alias(name, CHAMPION)
        except Exception:  # no champion yet
            current = None
        if current is not None and str(current.version) == version:
            return f"{name} v{version} is already @{CHAMPION}; nothing changed"
        if reason is not None:
            why = f"promoted with --force: {reason.strip()}"
        elif current is None:
            why = "no champion yet"
        else:
            champion_name = f"champion v{current.version}"
            if candidate_creators is None:
                raise PromotionRefused(
                    f"cannot compare {name} v{version} with {champion_name}: v{version} does "
                    "not record which creators it was trained on. Use --force --reason TEXT"
                )
            if data is None:
                raise PromotionRefused(
                    "the comparison needs data (--profiles/--posts); or use --force --reason TEXT"
                )
            champion, champion_creators = _verified(
                client, name, str(current.version), uri, Path(tmp) / "champion"
            )
            examples = post_examples(data.profiles, data.posts)
            if len(examples) == 0:
                raise PromotionRefused(
                    "the data give no examples to compare on; or use --force --reason TEXT"
                )
            ours = candidate.predict_log(examples.base)
            theirs = champion.predict_log(examples.base)
            label = examples.label
            result = compare_on_unseen(
                lambda m: float(np.mean(np.abs(ours[m] - label[m]))),
                lambda m: float(np.mean(np.abs(theirs[m] - label[m]))),
                examples.base["influencer"],
                champion_creators,
                champion_name,
                candidate_creators=candidate_creators,
            )
            if not result.wins:
                hint = (
                    "pass data with creators neither model was trained on, or"
                    if not result.compared
                    else "to promote it anyway,"
                )
                raise PromotionRefused(
                    f"{name} v{version} stays where it is: "
                    f"{result.reason}. {hint} use --force --reason TEXT"
                )
            why = f"engage promote: {result.reason}"
        client.set_registered_model_alias(name, CHAMPION, version)
        client.set_model_version_tag(name, version, "alias_reason", why)
        client.set_model_version_tag(name, version, "promoted_at", datetime.now(UTC).isoformat())
        if current is not None:
            client.set_model_version_tag(name, version, "previous_champion", str(current.version))
    before = f" (was v{current.version})" if current is not None else ""
    return f"{name} v{version} is now @{CHAMPION}{before}: {why}"
