"""The saved form of a fitted :class:`~features.pipeline.EngagementModel`, written and read safely.

A model folder ``models/<version>/`` holds ``model.joblib`` (the pickled pipeline),
``metadata.json``, ``registry.json`` (where training registered it in MLflow) and
``MANIFEST.json``: the SHA-256 of every other file, authenticated with an HMAC-SHA256 under a
secret key kept outside the models folder (:func:`model_key`). A bare checksum beside the files
proves nothing against someone who can write the folder, who would recompute it along with a
planted pickle; the HMAC cannot be recomputed without the key. Loading checks the HMAC, every
file's digest, the model format and the recorded library versions *before* unpickling anything,
because unpickling runs code. The same signed manifest covers MLflow's copy of a model (see
:func:`sign_folder`, :func:`verify_folder`).

Saving writes everything into a hidden staging folder (:func:`stage_artifact`) and renames it
into place only when complete (:meth:`StagedArtifact.publish`), so an interrupted save never
leaves a folder that looks finished.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import platform
import re
import secrets
import shutil
import stat
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path, PurePosixPath
from typing import Any

import joblib

MODEL_FILE = "model.joblib"
METADATA_FILE = "metadata.json"
REGISTRY_FILE = "registry.json"
MANIFEST_FILE = "MANIFEST.json"
# What engage wrote before models were signed: a checksum anyone can recompute.
LEGACY_MANIFEST = "MANIFEST.sha256"
# Layout of the pickled model, raised whenever a saved model would be read differently by this
# code: 2 = the booster adds to its starting level (``shrunk_log_er``, its init_score). A model
# of format 1 would unpickle fine and then predict without that level: silently wrong.
# 3 = the interval keeps each group's residual distribution (p_reach, percentiles) and groups
# by platform x tier x history band; a format-2 model has neither.
MODEL_FORMAT = 3
# Libraries whose objects are inside the pickle: a different version may unpickle wrongly.
PINNED_LIBRARIES = ("scikit-learn", "lightgbm", "pandas", "numpy", "scipy", "joblib")

# The signing key: the key itself in the environment, or a file outside the models folder.
KEY_ENV = "ENGAGE_MODEL_KEY"
KEY_FILE_ENV = "ENGAGE_MODEL_KEY_FILE"
MIN_KEY_CHARS = 32
# Written by MLflow's downloader into every copy of a registered model (its name and version):
# not part of what was logged, and removed from a download before it is signed or checked.
MLFLOW_DOWNLOAD_NOTE = "registered_model_meta"
# A manifest lists a few files; anything far larger is not one (and is not read into memory).
MAX_MANIFEST_BYTES = 1 << 20

# ``scheme://user:token@host``: the user-info part of any URI in a text.
_USER_INFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")


def redact(text: str | None) -> str | None:
    """``http://user:token@host/x`` -> ``http://***@host/x``, for every URI in ``text``.

    Tracking URIs may carry credentials; they are used to connect, never printed or stored.
    """
    return None if text is None else _USER_INFO.sub(r"\g<scheme>***@", str(text))


class ArtifactError(RuntimeError):
    """A model folder that is missing, incomplete, tampered
    with, unsigned or from other library versions."""


# --------------------------------------------------------------------------- the signing key


def default_key_file() -> Path:
    """``$XDG_CONFIG_HOME/engage/model.key``, else ``~/.config/engage/model.key``."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "engage" / "model.key"


def key_file() -> Path:
    """The key file engage reads: ``$ENGAGE_MODEL_KEY_FILE``, else :func:`default_key_file`."""
    named = os.environ.get(KEY_FILE_ENV)
    return Path(named).expanduser() if named else default_key_file()


def _how_to_set_key() -> str:
    return (
        f"set {KEY_ENV} to the key (at least {MIN_KEY_CHARS} characters), or {KEY_FILE_ENV} to a "
        f"file holding it (mode 0600); without either engage reads {default_key_file()}, which "
        "`engage train` creates on first use. Models verify only with the key that signed them"
    )


def model_key(*, create: bool = False) -> bytes:
    """The secret that signs and verifies models, kept outside every models folder.

    ``$ENGAGE_MODEL_KEY`` (the key itself), else the file :func:`key_file`. With ``create``
    (saving a model) a missing default key file is made: 32 random bytes as hex, mode 0600,
    announced once on stderr.
    """
    text = os.environ.get(KEY_ENV)
    if text is not None:
        return _checked_key(text, KEY_ENV)
    path = key_file()
    if not path.exists():
        if create and not os.environ.get(KEY_FILE_ENV):
            return _create_key(path)
        raise ArtifactError(
            f"no model signing key: {path} does not exist "
            f"and {KEY_ENV} is not set; {_how_to_set_key()}"
        )
    try:
        mode = path.stat().st_mode
        if os.name == "posix" and mode & 0o077:
            raise ArtifactError(
                f"{path}: the model key is accessible to other users "
                f"(mode {stat.S_IMODE(mode):04o}); run `chmod 600 {path}`"
            )
        return _checked_key(path.read_text(), str(path))
    except (OSError, UnicodeDecodeError) as exc:
        raise ArtifactError(
            f"{path}: cannot read the model key ({exc}); {_how_to_set_key()}"
        ) from None


def _checked_key(text: str, where: str) -> bytes:
    key = text.strip()
    if len(key) < MIN_KEY_CHARS:
        raise ArtifactError(
            f"{where}: the model key has {len(key)} "
            f"characters, at least {MIN_KEY_CHARS} are needed "
            "(make one with `python -c 'import secrets; print(secrets.token_hex(32))'`)"
        )
    return key.encode()


def _create_key(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    draft = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(draft, path)  # never replaces a key another process created meanwhile
            print(
                f"engage: created the model signing key {path} "
                "(mode 0600). Every model saved is signed "
                "with it and only models it signed are loaded; "
                "to load them elsewhere, give that machine "
                f"the same key ({KEY_ENV} or {KEY_FILE_ENV}).",
                file=sys.stderr,
                flush=True,
            )
        except FileExistsError:
            pass
    finally:
        draft.unlink(missing_ok=True)
    return model_key()


def key_id(key: bytes) -> str:
    """A short public name for a key (derived with the HMAC, so it reveals nothing of the key)."""
    return hmac.new(key, b"engage model key id", hashlib.sha256).hexdigest()[:12]


# --------------------------------------------------------------------------- signed manifests


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def _files_under(folder: Path) -> dict[str, Path]:
    """Every entry below ``folder`` by its relative POSIX name, the top-level manifest excepted."""
    found = {}
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        if name == MANIFEST_FILE or (path.is_dir() and not path.is_symlink()):
            continue
        found[name] = path
    return found


def sign_folder(folder: Path, key: bytes | None = None) -> None:
    """Write ``MANIFEST.json``: every file below ``folder`` with its SHA-256, and their HMAC."""
    key = key or model_key()
    folder = Path(folder)
    files = {name: sha256_of(path) for name, path in _files_under(folder).items()}
    body = {"manifest_format": 1, "algorithm": "HMAC-SHA256", "key_id": key_id(key), "files": files}
    signed = {**body, "hmac": hmac.new(key, _canonical(body), hashlib.sha256).hexdigest()}
    (folder / MANIFEST_FILE).write_text(json.dumps(signed, indent=1, sort_keys=True) + "\n")


def verify_folder(
    folder: Path, key: bytes | None = None, *, only: tuple[str, ...] | None = None
) -> dict[str, str]:
    """Check ``folder`` against its signed manifest; return the manifest's files and digests.

    The HMAC is checked first, then every listed file's digest, and no file may be there that the
    manifest does not list (a planted module or pickle). ``only`` checks those files' digests and
    skips the rest (reading a few small files of many folders). Nothing is imported or unpickled.
    """
    folder = Path(folder)
    manifest = folder / MANIFEST_FILE
    if not manifest.is_file():
        if (folder / LEGACY_MANIFEST).is_file():
            raise ArtifactError(
                f"{folder}: saved by an engage before models "
                f"were signed ({LEGACY_MANIFEST} only, a checksum "
                "anyone who can write the folder can recompute); refusing to load it. Retrain it."
            )
        raise ArtifactError(
            f"{folder}: {MANIFEST_FILE} is missing; the folder "
            "is incomplete, unsigned or not a model. Retrain it."
        )
    key = key or model_key()
    try:
        if manifest.stat().st_size > MAX_MANIFEST_BYTES:
            raise ValueError("too large")
        signed = json.loads(manifest.read_text())
        body = {k: v for k, v in signed.items() if k != "hmac"}
        claimed, files = str(signed["hmac"]), dict(body["files"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ArtifactError(
            f"{folder}: {MANIFEST_FILE} is unreadable ({exc}); "
            "the folder was damaged or not written by engage"
        ) from None
    expected = hmac.new(key, _canonical(body), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(claimed, expected):
        if body.get("key_id") != key_id(key):
            raise ArtifactError(
                f"{folder}: signed with another key (key id "
                f"{body.get('key_id')}; yours is {key_id(key)}), or its "
                "manifest was rewritten; refusing to load it. Use "
                f"the key of the machine that trained it ({KEY_ENV} or "
                f"{KEY_FILE_ENV}), or retrain it."
            )
        raise ArtifactError(
            f"{folder}: the signature of {MANIFEST_FILE} does not "
            "match: the manifest was changed after it was signed"
        )
    for name in files:
        parts = PurePosixPath(name).parts
        if not parts or PurePosixPath(name).is_absolute() or ".." in parts:
            raise ArtifactError(
                f"{folder}: the manifest names a file outside the folder ({name!r})"
            )
    present = _files_under(folder)
    if only is None:
        extra = sorted(set(present) - set(files))
        if extra:
            raise ArtifactError(
                f"{folder}: {', '.join(extra[:5])} {'is' if len(extra) == 1 else 'are'} not "
                "covered by the signed manifest (added after signing); refusing to load it"
            )
    for name in files if only is None else [n for n in only if n in files]:
        path = present.get(name)
        if path is None or path.is_symlink() or not path.is_file():
            raise ArtifactError(f"{folder}: {name} is missing (or not a regular file)")
        actual = sha256_of(path)
        if actual != files[name]:
            raise ArtifactError(
                f"{folder}: {name} does not match its SHA-256 in the "
                f"signed manifest (expected {files[name][:12]}..., "
                f"found {actual[:12]}...); the file was changed or corrupted"
            )
    return files


# --------------------------------------------------------------------------- model folders


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PINNED_LIBRARIES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def new_version() -> str:
    """Sortable by time, unique across concurrent runs: 20261126T013000123456Z-1a2b3c."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ") + "-" + uuid.uuid4().hex[:6]


@dataclass
class StagedArtifact:
    """A complete, signed model folder not yet in place: ``folder`` becomes ``final`` on publish.

    ``folder`` is ``models/.tmp-<version>/<version>``, so a copy of it (MLflow's) keeps the
    version as its name. Hidden folders are never models, so a kill leaves nothing that looks
    finished.
    """

    folder: Path
    final: Path
    key: bytes
    published: bool = False

    def publish(self, registry: dict[str, Any] | None = None) -> Path:
        """Record ``registry`` (where the model was registered), sign again, rename into place."""
        if registry is not None:
            (self.folder / REGISTRY_FILE).write_text(json.dumps(registry, indent=2, default=str))
            sign_folder(self.folder, self.key)
        for path in self.folder.iterdir():
            _fsync(path)
        os.rename(self.folder, self.final)  # atomic on one filesystem: complete or not there at all
        self.published = True
        self.discard()
        return self.final

    def unpublish(self) -> None:
        """Take a published folder away again (its registration failed)."""
        if self.published:
            shutil.rmtree(self.final, ignore_errors=True)
            self.published = False

    def discard(self) -> None:
        """Remove the staging folder (and an unpublished model in it); idempotent."""
        shutil.rmtree(self.folder.parent, ignore_errors=True)


def stage_artifact(
    model: Any, models_dir: Path, metadata: dict[str, Any], version_name: str | None = None
) -> StagedArtifact:
    """Write and sign the model in a hidden staging folder under ``models_dir``."""
    key = model_key(create=True)  # first: a missing or bad key fails before any work is written
    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    version_name = version_name or new_version()
    staged = StagedArtifact(
        models_dir / f".tmp-{version_name}" / version_name, models_dir / version_name, key
    )
    staged.folder.mkdir(parents=True)
    try:
        joblib.dump(model, staged.folder / MODEL_FILE)
        meta = {
            **metadata,
            "version": version_name,
            "trained_at": datetime.now(UTC).isoformat(),
            "model_format": MODEL_FORMAT,
            "library_versions": library_versions(),
        }
        (staged.folder / METADATA_FILE).write_text(json.dumps(meta, indent=2, default=str))
        sign_folder(staged.folder, key)
    except BaseException:
        staged.discard()
        raise
    return staged


def save_artifact(
    model: Any,
    models_dir: Path,
    metadata: dict[str, Any],
    version_name: str | None = None,
    *,
    registry: dict[str, Any] | None = None,
) -> Path:
    """Write the signed model folder atomically and return its final path.

    Training stages, registers in MLflow, then publishes with the registration (``registry``);
    a folder saved without one is loadable by its path but never ``latest``.
    """
    staged = stage_artifact(model, models_dir, metadata, version_name)
    try:
        return staged.publish(registry)
    finally:
        staged.discard()


def _fsync(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def complete_versions(models_dir: Path) -> list[Path]:
    """Finished (signed) model folders, by name
    (temporary and manifest-less folders are skipped)."""
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        return []
    found = [
        p
        for p in models_dir.iterdir()
        if p.is_dir() and not p.name.startswith(".") and (p / MANIFEST_FILE).is_file()
    ]
    return sorted(found, key=lambda p: p.name)


def latest_model_dir(models_dir: Path) -> Path:
    """``latest``: the newest registered model under ``models_dir`` by its signed training time.

    Candidates are folders whose signed manifest covers a ``registry.json`` (training writes it
    only once MLflow registered the model) and whose name is the version recorded at save time
    (a copied or renamed folder never wins by its name). A folder that fails verification
    stops the search rather than being skipped: ``latest`` would silently mean an older model.
    """
    models_dir = Path(models_dir)
    folders = complete_versions(models_dir)
    key = model_key() if folders else b""
    newest: tuple[str, str, Path] | None = None
    unregistered = copies = 0
    for folder in folders:
        try:
            files = verify_folder(folder, key, only=(METADATA_FILE, REGISTRY_FILE))
            meta = (
                json.loads((folder / METADATA_FILE).read_text()) if METADATA_FILE in files else {}
            )
        except ArtifactError as exc:
            raise ArtifactError(
                f"{exc}. `latest` would skip it for an older model: "
                "remove the folder, or name a model explicitly"
            ) from None
        if REGISTRY_FILE not in files:
            unregistered += 1
        elif meta.get("version") != folder.name:
            copies += 1
        elif newest is None or (str(meta.get("trained_at", "")), folder.name) > newest[:2]:
            newest = (str(meta.get("trained_at", "")), folder.name, folder)
    if newest is None:
        legacy = (
            [p for p in models_dir.iterdir() if (p / LEGACY_MANIFEST).is_file()]
            if models_dir.is_dir()
            else []
        )
        skipped = [
            f"{unregistered} saved without registration" if unregistered else "",
            f"{copies} copied or renamed" if copies else "",
            f"{len(legacy)} saved before models were signed (retrain)" if legacy else "",
        ]
        notes = "; ".join(s for s in skipped if s)
        raise ArtifactError(
            f"no saved model under {models_dir} that training "
            f"registered{f' ({notes})' if notes else ''}; "
            "run `engage train` first, or name a model folder"
        )
    return newest[2]


def resolve_model_dir(ref: str | Path, models_dir: Path = Path("models")) -> Path:
    """A model folder path, a version name under ``models_dir``,
    or ``latest`` (:func:`latest_model_dir`)."""
    if str(ref) == "latest":
        return latest_model_dir(models_dir)
    path = Path(ref)
    if not path.is_dir() and (Path(models_dir) / str(ref)).is_dir():
        path = Path(models_dir) / str(ref)
    if not path.is_dir():
        raise ArtifactError(f"{ref}: no such model folder")
    return path


def verify_artifact(path: Path, *, check_versions: bool = True) -> dict[str, Any]:
    """Check the signed manifest, the model format and library versions; return the metadata.

    Nothing is unpickled.
    """
    return _verify_artifact(Path(path), check_versions)[0]


def _verify_artifact(path: Path, check_versions: bool) -> tuple[dict[str, Any], dict[str, str]]:
    files = verify_folder(path)
    for required in (MODEL_FILE, METADATA_FILE):
        if required not in files:
            raise ArtifactError(f"{path}: the signed manifest does not list {required}")
    try:
        metadata = json.loads((path / METADATA_FILE).read_text())
    except ValueError as exc:
        raise ArtifactError(f"{path}: {METADATA_FILE} is not JSON ({exc})") from None
    saved_format = metadata.get("model_format", 1)
    if saved_format != MODEL_FORMAT:
        raise ArtifactError(
            f"{path}: saved by another engage (model format {saved_format}, this one reads "
            f"{MODEL_FORMAT}), refusing to load a model it would read differently. Retrain it."
        )
    if check_versions:
        recorded = metadata.get("library_versions", {})
        current = library_versions()
        # Python patch releases do not change pickles; compare major.minor only.
        recorded_py = ".".join(str(recorded.get("python", "")).split(".")[:2])
        current_py = ".".join(current["python"].split(".")[:2])
        diffs = (
            [f"python {recorded_py} (saved) vs {current_py} (here)"]
            if recorded_py != current_py
            else []
        )
        diffs += [
            f"{lib} {recorded.get(lib)} (saved) vs {current[lib]} (here)"
            for lib in PINNED_LIBRARIES
            if recorded.get(lib) != current[lib]
        ]
        if diffs:
            raise ArtifactError(
                f"{path}: saved with other library versions, refusing to unpickle: "
                + "; ".join(diffs)
                + ". Retrain, or install the saved versions."
            )
    return metadata, files


def load_artifact(path: Path, *, check_versions: bool = True) -> Any:
    """Verify, then unpickle the fitted model; attaches the metadata as ``model.metadata``.

    The pickle is read into memory once and its digest checked on those very bytes, so a file
    swapped between the check and the load is never unpickled.
    """
    path = Path(path)
    metadata, files = _verify_artifact(path, check_versions)
    data = (path / MODEL_FILE).read_bytes()
    if hashlib.sha256(data).hexdigest() != files[MODEL_FILE]:
        raise ArtifactError(
            f"{path}: {MODEL_FILE} changed while it was being loaded; refusing to unpickle it"
        )
    try:
        model = joblib.load(io.BytesIO(data))
    except Exception as exc:  # truncated or damaged before it was signed: many error types
        raise ArtifactError(
            f"{path}: {MODEL_FILE} matches its signature but cannot be unpickled "
            f"({type(exc).__name__}: {exc}); it was damaged before it was signed. Retrain it."
        ) from None
    if hasattr(model, "metadata"):
        model.metadata = {**getattr(model, "metadata", {}), **metadata}
    return model
