"""Generated bad inputs through ``engage score``, the Python API and REST, in process.

The kinds of bad input and what must come of each are listed in :mod:`tests.fuzzing`. Each kind
runs a few deterministic examples in the normal suite (``make test``) and many random ones under
the ``reliability`` marker (``make reliability``); the figures are printed at the end of the
run (see ``pytest_terminal_summary`` in conftest.py).

The CLI runs in process with the model loaded once: ``engage score`` is called through
``engage.cli.main`` with ``serving.predictor.load_model`` answering the fixture's model folder
from a cache (any other ``--model`` goes through the real loading). REST is MLflow's scoring app
behind serving.server's limits (the app ``engage serve`` runs), called through FastAPI's test
client with JSON and with text/csv bodies.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from tests import fuzzing
from tests.serving_fixtures import ServingModel

PER_KIND_SMALL = 6  # examples per kind in the normal suite: ~750 surface runs with the faults
PER_KIND_BIG = 40  # under the reliability marker


@pytest.fixture(scope="module")
def predictor(served: ServingModel) -> Any:
    from serving import load_model

    return load_model(served.model_dir)


@pytest.fixture(scope="module")
def cli_model(served: ServingModel, predictor: Any) -> Iterator[Path]:
    """The model folder for ``engage score --model``, loaded once for every CLI case."""
    import serving.predictor

    real = serving.predictor.load_model
    folder = served.model_dir.resolve()

    def cached(ref: Any, *args: Any, **kwargs: Any) -> Any:
        return predictor if Path(str(ref)).resolve() == folder else real(ref, *args, **kwargs)

    serving.predictor.load_model = cached  # type: ignore[assignment]
    try:
        yield served.model_dir
    finally:
        serving.predictor.load_model = real


@pytest.fixture(scope="module")
def rest_client(served: ServingModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The app ``engage serve`` runs (MLflow's scoring
    app behind serving.server's limits), in process."""
    import mlflow.pyfunc
    from fastapi.testclient import TestClient

    from serving.rest import build_pyfunc_model
    from serving.server import build_app

    environment = dict(os.environ)
    path = build_pyfunc_model(served.model_dir, tmp_path_factory.mktemp("fuzz_rest"))
    app = build_app(mlflow.pyfunc.load_model(str(path)))  # MLflow sets a serving flag in os.environ
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            yield client
    finally:
        os.environ.clear()
        os.environ.update(environment)


_FOLDERS = iter(range(10**9))


def _fuzz(examples: int, derandomize: bool) -> Any:
    @pytest.mark.parametrize("kind_name", sorted(fuzzing.KINDS))
    def test(
        kind_name: str,
        cli_model: Path,
        predictor: Any,
        rest_client: Any,
        tmp_path_factory: pytest.TempPathFactory,
    ) -> None:
        @settings(
            max_examples=examples,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            derandomize=derandomize,
        )
        @given(case=fuzzing.cases(kind_name))
        def run(case: fuzzing.Case) -> None:
            folder = tmp_path_factory.getbasetemp() / "fuzz" / str(next(_FOLDERS))
            for surface in case.surfaces:
                try:
                    if surface == "cli":
                        outcome = fuzzing.run_cli(case, folder / "cli", cli_model)
                    elif surface == "api":
                        outcome = fuzzing.run_api(case, folder / "api", predictor, cli_model)
                    elif case.model_fault:  # REST: `engage serve` starting on the faulty model
                        outcome = fuzzing.run_serve(case, folder / "serve", cli_model)
                    else:
                        outcome = fuzzing.run_rest(case, rest_client, as_csv=surface == "rest_csv")
                    result = fuzzing.check(case, outcome)
                except BaseException:
                    fuzzing.record(case, "unhandled", surface)
                    raise
                fuzzing.record(case, result, surface)

        run()

    return test


def _fault_cases() -> list[fuzzing.Case]:
    """One case per model, key and output fault: the few drawn examples of their kinds in the
    normal suite would leave some out."""
    cases = []
    for fault in fuzzing.MODEL_FAULTS:
        case = fuzzing.base_case("each_model_fault")
        case.model_fault = fault
        fuzzing._model_refusal(case, fault, fuzzing.MODEL_FAULTS[fault])
        cases.append(case)
    for fault in fuzzing.KEY_FAULTS:
        case = fuzzing.base_case("each_key_fault")
        case.model_fault, case.key_fault = "copy", fault
        fuzzing._model_refusal(case, fault, fuzzing.KEY_FAULTS[fault])
        cases.append(case)
    for fault, phrase in fuzzing.OUTPUT_FAULTS.items():
        case = fuzzing.base_case("each_output_fault")
        case.output_fault, case.out_name, case.surfaces = fault, "out/ranked.xlsx", ("cli",)
        if fault == "cell_too_long_for_excel":
            long_name = "h" * 33_000
            case.profiles = case.profiles.replace({"influencer": {"user2": long_name}})
            case.posts = case.posts.replace({"influencer": {"user2": long_name}})
        case.previous_out = None if fault == "path_is_a_folder" else b"previous\n"
        case.expect, case.must_name, case.detail = "refused", ("ranked.xlsx", phrase), fault
        cases.append(case)
    return cases


@pytest.mark.parametrize("case", _fault_cases(), ids=lambda c: f"{c.kind}-{c.detail}")
def test_every_model_key_and_output_fault(
    case: fuzzing.Case,
    cli_model: Path,
    predictor: Any,
    tmp_path: Path,
) -> None:
    for surface in case.surfaces:
        if surface == "cli":
            outcome = fuzzing.run_cli(case, tmp_path / "cli", cli_model)
        elif surface == "api":
            outcome = fuzzing.run_api(case, tmp_path / "api", predictor, cli_model)
        else:
            outcome = fuzzing.run_serve(case, tmp_path / "serve", cli_model)
        fuzzing.record(case, fuzzing.check(case, outcome), surface)


test_fuzzed_inputs = _fuzz(PER_KIND_SMALL, derandomize=True)
test_fuzzed_inputs_big = pytest.mark.reliability(_fuzz(PER_KIND_BIG, derandomize=False))
