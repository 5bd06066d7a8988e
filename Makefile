# Fresh Debian machine with Python 3.11 and Java 17:  make demo  |  make test
PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
WARC ?=
OUT ?= out/demo
MASTER ?= local[2]
JOB ?= pipeline
ARGS ?=
PYTEST_ARGS ?=
export PYSPARK_PYTHON := $(abspath $(VPY))
export PYSPARK_DRIVER_PYTHON := $(abspath $(VPY))
export PYTHONPATH := $(CURDIR)

.PHONY: setup demo test test-fast lint sample package submit bench clean

setup: $(STAMP)

$(STAMP): requirements.txt
	$(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -r requirements.txt
	touch $(STAMP)

sample: $(STAMP)
	$(VPY) -m pipeline.prepare.samplegen --output out/sample/sample.warc.gz

# Runs every stage that exists on the bundled (generated) sample, or on WARC='path/or/glob'.
demo: $(STAMP)
	@if [ -z "$(WARC)" ]; then $(MAKE) --no-print-directory sample; fi
	$(VPY) -m jobs.pipeline --input $(if $(WARC),$(WARC),out/sample/sample.warc.gz) --output $(OUT) --overwrite $(ARGS)

test: $(STAMP)
	$(VPY) -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(VPY) -m pytest -m "not spark and not cluster and not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(VPY) -m ruff check .
