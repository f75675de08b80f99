"""Which model a command used, in the registry's words: ``engagement v3 @champion``.

A model is loaded from a folder or from an MLflow reference whose download is a temporary copy;
neither path tells a reader which registered version they are looking at. :func:`identify`
names it from the reference (``models:/engagement@champion``, ``models:/engagement/3``), or for a
folder from its signed ``registry.json``, with the aliases the version holds now when the
tracking store can be read (else the alias it got at registration, said so).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from features.artifact import REGISTRY_FILE
from features.registry import require_tracking_store, resolve_tracking_uri

_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))/?$")


@dataclass
class ModelIdentity:
    """A loaded model as the registry knows it.

    Attributes
    ----------
    registered_model, version
        Registered name and version; None for a folder saved without registration.
    aliases
        Aliases the version holds (now, or at registration if ``aliases_now`` is False).
    folder_version
        The saved model's own version (its folder name under ``models/``).
    """

    registered_model: str | None
    version: str | None
    aliases: list[str] = field(default_factory=list)
    aliases_now: bool = True
    folder_version: str = ""

    @property
    def label(self) -> str:
        if self.registered_model is None or self.version is None:
            return f"model {self.folder_version} (not registered)"
        aliases = " ".join(f"@{a}" for a in self.aliases)
        if aliases and not self.aliases_now:
            aliases += " at registration"
        return f"{self.registered_model} v{self.version}" + (
            f" {aliases}" if aliases else " (no alias)"
        )


def _aliases_now(name: str, version: str, tracking_uri: str | None) -> list[str] | None:
    """The version's aliases in the tracking store, or None if it cannot be asked (no store)."""
    uri = resolve_tracking_uri(tracking_uri)
    try:
        require_tracking_store(uri)  # never create an empty mlflow.db just to ask
        from mlflow import MlflowClient

        return sorted(MlflowClient(tracking_uri=uri).get_model_version(name, version).aliases)
    except Exception:  # no store, no such version, server down: fall back to what was recorded
        return None


def identify(ref: str | Path, predictor: Any, tracking_uri: str | None = None) -> ModelIdentity:
    """Name the model ``predictor`` was loaded from ``ref`` as (see the module docstring)."""
    folder_version = str(getattr(predictor, "version", ""))
    match = _MODELS_URI.match(str(ref))
    if match:
        name = match["name"]
        version = match["version"]
        if version is None:
            try:
                from mlflow import MlflowClient

                version = str(
                    MlflowClient(tracking_uri=resolve_tracking_uri(tracking_uri))
                    .get_model_version_by_alias(name, match["alias"])
                    .version
                )
            except Exception:
                return ModelIdentity(name, None, [match["alias"]], True, folder_version)
        now = _aliases_now(name, version, tracking_uri)
        return ModelIdentity(
            name, version, now if now is not None else [], now is not None, folder_version
        )
    registry_file = Path(getattr(predictor, "path", ref)) / REGISTRY_FILE
    try:
        registry = json.loads(registry_file.read_text())
    except (OSError, ValueError):
        return ModelIdentity(None, None, folder_version=folder_version)
    name, version = registry.get("registered_model"), str(registry.get("model_version", ""))
    if not name or not version:
        return ModelIdentity(None, None, folder_version=folder_version)
    now = _aliases_now(name, version, tracking_uri)
    if now is None:
        return ModelIdentity(
            name,
            version,
            [str(registry.get("alias"))] if registry.get("alias") else [],
            False,
            folder_version,
        )
    return ModelIdentity(name, version, now, True, folder_version)
