# ResponseAI: two commands on a fresh machine with Python 3.11 -> `make demo`, `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
OUT    ?= demo-output
# UTF-8 file I/O whatever the machine's locale (CI may run with LANG unset).
export PYTHONUTF8 := 1

.PHONY: demo test bench check-slicer-requirements clean

# torch is installed first, pinned: monai's unpinned `torch` requirement would otherwise pull
# a multi-GB CUDA build. The stamps re-run the install only when pyproject.toml changes.
$(VENV)/.core: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.test: $(VENV)/.core
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

demo: $(VENV)/.core
	$(BIN)/responseai demo --out $(OUT)

# one worker per core, each test file kept on one worker (its module fixtures are built once);
# one torch thread per worker, so two workers do not fight over two cores. TEST_WORKERS=0 runs serially.
TEST_WORKERS ?= auto
test: $(VENV)/.test
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

# per-case latency and peak memory of the shipped models (measurements, not tests)
bench: $(VENV)/.core
	$(BIN)/responseai bench breast --n 10 --threads 2
	$(BIN)/responseai evaluate breast segmentation --bench 20 --threads 1

# the first-use requirements resolve against Slicer 5.10 / 5.12's bundled numpy and pydicom (needs PyPI)
check-slicer-requirements: $(VENV)/.core
	$(BIN)/python Testing/Scripts/check_slicer_requirements.py

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
