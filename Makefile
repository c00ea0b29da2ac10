# One virtual environment serves every target. Torch is installed first so that the
# project's open `torch>=2.2` requirement adds nothing (an unpinned torch resolved by
# pip downloads a multi-GB CUDA build). CUDA users: make TORCH_SPEC="torch==2.13.0" \
#   TORCH_INDEX="--index-url https://download.pytorch.org/whl/cu126" install
PYTHON ?= python3.11
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
DEMO_DIR ?= demo-output

BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test clean

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_INDEX) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

# The demo sweep end to end (about 6 minutes on 2 cores): each run is a new sweep
# under $(DEMO_DIR); the last lines say where the results are and how to browse them.
demo: $(STAMP)
	$(BIN)/passion-sweep run experiments/demo.yaml --set ray.storage_path=$(DEMO_DIR) \
		--set name=demo-$$(date +%Y%m%d-%H%M%S)

test: $(STAMP)
	$(BIN)/python -m pytest -q tests

clean:
	rm -rf $(VENV) $(DEMO_DIR)
