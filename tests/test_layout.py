"""The tests mirror the modules: every module of the four packages has its own test file."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("features", "training", "serving", "engage")

# Modules with nothing of their own to test; every other module needs
# tests/<package>/test_<module>.py.
EXEMPT = {
    "features/__init__.py",  # empty
    "training/__init__.py",  # empty
    "engage/__init__.py",  # empty
    "serving/__init__.py",  # re-exports Predictor and load_model (tests/serving/test_predictor.py)
    "engage/__main__.py",  # `python -m engage` calls main (tests/engage/test_cli.py runs it)
    "features/errors.py",  # the DataError class alone; raised and matched in test_contract.py
}


def test_every_module_has_its_test_file():
    modules = sorted(
        p.relative_to(REPO).as_posix() for pkg in PACKAGES for p in (REPO / pkg).glob("*.py")
    )
    missing = [
        f"tests/{Path(m).parent}/test_{Path(m).name}"
        for m in modules
        if m not in EXEMPT
        and not (REPO / "tests" / Path(m).parent / f"test_{Path(m).name}").is_file()
    ]
    assert not missing, "modules without a test file: " + ", ".join(missing)


def test_the_exemptions_name_real_modules():
    gone = sorted(m for m in EXEMPT if not (REPO / m).is_file())
    assert not gone, f"exempt modules that no longer exist: {gone}"


def test_every_test_folder_is_a_package():
    # Basenames repeat across folders (test_distributed.py): pytest tells them apart by package.
    for pkg in PACKAGES:
        assert (REPO / "tests" / pkg / "__init__.py").is_file(), pkg
