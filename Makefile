# engage: run `make` to list the targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA_DIR ?= data/instagram
# Not MLflow's default 5000: `engage serve` (MLflow's scoring server) listens there.
MLFLOW_UI_PORT ?= 5050

.DEFAULT_GOAL := help
# What ruff checks and formats (mypy reads its packages from pyproject.toml).
CODE := engage features training serving tests benchmarks scripts

.PHONY: help install train features validate gates test test-fast lint typecheck bench mlflow-ui reliability report-check clean

help: ## List the targets with a one-line description each
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

install: $(STAMP) ## Create the virtual environment and install engage with its dev tools

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip >/dev/null
	$(BIN)/pip install -e '.[dev]'
	touch $(STAMP)

train: install ## Train the model on the embedded data (the main job) and print model vs baselines
	$(BIN)/engage train

features: install ## Build the feature table from the embedded data into build/features.csv
	$(BIN)/engage features --out build/features.csv

validate: install ## Validate the embedded data and print the report
	$(BIN)/engage validate

gates: install ## The checks CI runs before the tests: ruff lint and format, mypy, import contracts
	$(BIN)/ruff check $(CODE)
	$(BIN)/ruff format --check $(CODE)
	$(BIN)/mypy
	$(BIN)/lint-imports

test: gates ## Run the gates, then the test suite (the heavy reliability runs are `make reliability`)
	$(BIN)/pytest -m 'not reliability'

test-fast: install ## Run the tests, skipping slow end-to-end training runs
	$(BIN)/pytest -m 'not slow and not reliability'

lint: install ## ruff on the code (lint only; `make gates` also checks the format and types)
	$(BIN)/ruff check $(CODE)

typecheck: install ## mypy on the packages
	$(BIN)/mypy

bench: install ## Feature pipeline benchmark against DuckDB (1M and 10M synthetic posts)
	$(BIN)/python benchmarks/features.py

reliability: install ## Rerun the reliability suite and print its figures
	$(BIN)/pytest -m reliability -s
	$(BIN)/python benchmarks/reliability.py

report-check: install ## Score the embedded data with the champion as HTML, screenshot it at desktop and phone width in headless Chromium
	$(BIN)/engage score --out build/report.html --top 15 --target-engagements 1000 --as-of 2019-05-16
	bash scripts/report_check.sh build/report.html build/report-desktop.png 1400x2600
	bash scripts/report_check.sh build/report.html build/report-phone.png 390x3200
	@echo "look at build/report-desktop.png and build/report-phone.png"

mlflow-ui: install ## Open the MLflow UI on the local tracking store (mlflow.db) at http://127.0.0.1:5050
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --port $(MLFLOW_UI_PORT)

clean: ## Remove the virtual environment and build outputs (keeps models/ and mlflow.db)
	rm -rf $(VENV) build .pytest_cache .ruff_cache .mypy_cache .import_linter_cache
