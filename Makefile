# Two commands, set-up included:  `make viz` (open the visualizer)  and  `make test` (run the tests).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup viz test lint clean

setup: $(VENV)/.installed

# torch==2.13.0 first: on our machines that picks the local CPU wheel; everything after it then
# finds torch already satisfied and never pulls CUDA wheels.
$(VENV)/.installed: pyproject.toml scripts/setup.sh
	bash scripts/setup.sh $(PY) $(VENV)
	touch $@

viz: setup
	bash scripts/viz.sh $(BIN)/python $(ARGS)

test: setup
	bash scripts/test.sh $(BIN)/python

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache
