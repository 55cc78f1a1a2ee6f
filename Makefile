# Two commands do all set-up on a fresh machine:
#   make quickstart   create .venv if missing, then run the Fashion-MNIST quick-start benchmark
#   make test         create .venv if missing, then run the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --disable-pip-version-check -q -c constraints.txt

.PHONY: setup quickstart test test-slow clean-venv

setup: $(VENV)/.kdzoo-installed

$(VENV)/.kdzoo-installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) torch torchvision
	$(PIP) -e '.[test,slurm,logging,report,browser]'
	touch $@

quickstart: setup
	$(VENV)/bin/kdzoo bench recipes/quickstart.yaml

# pytest exits 5 when it collected no test: treat that as a failure, not a pass.
test: setup
	$(PY) -m pytest -q -p no:cacheprovider; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

test-slow: setup
	KDZOO_SLOW=1 $(PY) -m pytest -q -p no:cacheprovider -m slow

clean-venv:
	rm -rf $(VENV)
