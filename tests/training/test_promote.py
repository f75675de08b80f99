"""``engage promote`` (training/promote.py): the champion moves only with its checks."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from engage.cli import main
from tests.model_fixtures import EMBEDDED, SmallData, train_small
from tests.training_fixtures import tracking_store


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

    uri, _ = tracking_store(trained)
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
