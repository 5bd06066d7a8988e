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

.PHONY: setup demo test test-fast check-kernels lint sample package submit bench clean

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

# The Triton grouped-GEMM kernels without a GPU: compile them for sm_90 under every tile config
# (shared memory, registers, spills) and run their logic in Triton's interpreter on CPU. Triton (and
# numpy 2.3: Triton 3.6's interpreter fails on numpy 2.4) go into .kernels-check/, not the project
# venv, whose torch is the CPU wheel. CI runs this after `make test`.
KCHECK := .kernels-check/.installed
$(KCHECK): $(STAMP)
	$(VPY) -m pip install -q --upgrade --target .kernels-check triton==3.6.0 numpy==2.3.5
	touch $(KCHECK)

check-kernels: $(KCHECK)
	PYTHONPATH=$(CURDIR)/.kernels-check:$(CURDIR) $(VPY) -m pytest -q tests/test_grouped_gemm_sm90_compile.py tests/test_grouped_gemm_interpreter.py
	PYTHONPATH=$(CURDIR)/.kernels-check:$(CURDIR) $(VPY) -m models.moe.kernels.sm90_check

test-fast: $(STAMP)
	$(VPY) -m pytest -m "not spark and not cluster and not slow" $(PYTEST_ARGS)

# The CPU benchmarks one after another (stage1, minhash, dedup, tokenizer_speed, model_speed; the
# datatrove sides only where its venv exists) into one table: bench/results/RESULTS.md + results.json.
# About 15 minutes on 2 cores. ARGS go to bench.run_all (e.g. ARGS="--only minhash,dedup").
bench: $(STAMP)
	$(VPY) -m bench.run_all $(ARGS)

lint: $(STAMP)
	$(VPY) -m ruff check .

# ---------------------------------------------------------------- cluster: package + submit
# `make package` fills dist/: launch.py (the spark-submit entry point), dots_data.zip (pipeline/ jobs/ udfs/ models/ conf/, for --py-files and,
# extracted as ./dots_data, for files that must be real files on the nodes), conf/ (a copy to edit and
# pass with --config), and environment.tar.gz (venv-pack of .venv, for --archives ...#environment).
# venv-pack does not copy the interpreter: bin/python stays a link to the base Python (see
# docs/CLUSTER.md); PYTHON_PREFIX=/usr relinks it to the nodes' own Python 3.11.
# PACK_ENV=0 skips the (large, slow) environment archive: nodes then use the Python at $(VPY)'s path.
DIST ?= dist
PYZIP := $(DIST)/dots_data.zip
ENV_ARCHIVE ?= $(DIST)/environment.tar.gz
PACK_ENV ?= 1
PYTHON_PREFIX ?=
DEPLOY_MODE ?= client
SUBMIT_CONF ?=
SPARK_SUBMIT ?= $(VENV)/bin/spark-submit
PACK_EXCLUDE := --exclude 'lib/python*/site-packages/pyspark/jars/*' --exclude '*/__pycache__/*' --exclude '.installed'
# Executors (and the driver in cluster mode) run ./environment/bin/python when the archive is shipped.
SUBMIT_ENV_ARGS = $(if $(wildcard $(ENV_ARCHIVE)),--archives $(PYZIP)\#dots_data$(,)$(ENV_ARCHIVE)\#environment \
  --conf spark.pyspark.python=./environment/bin/python \
  --conf spark.pyspark.driver.python=$(if $(filter cluster,$(DEPLOY_MODE)),./environment/bin/python,$(abspath $(VPY))),\
  --archives $(PYZIP)\#dots_data)
, := ,

package: $(STAMP)
	@mkdir -p $(DIST)
	rm -rf $(PYZIP) $(DIST)/conf
	find pipeline jobs udfs models conf -type f ! -path '*/__pycache__/*' ! -name '*.pyc' | LC_ALL=C sort \
	  | $(VPY) -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED); [z.write(p) for p in sys.stdin.read().split()]; z.close()' $(PYZIP)
	cp -r conf $(DIST)/conf
	@# spark-submit puts the main script's folder first on sys.path: jobs/pipeline.py would then shadow
	@# the pipeline package, so the entry point is this launcher, which runs jobs.<stage> as __main__.
	printf '%s\n' '# spark-submit entry point: launch.py jobs.<stage> ARGS (see make submit).' \
	  'import runpy' 'import sys' '' 'runpy.run_module(sys.argv.pop(1), run_name="__main__", alter_sys=True)' \
	  > $(DIST)/launch.py
	@if [ "$(PACK_ENV)" = "1" ]; then \
	  echo "venv-pack $(VENV) -> $(ENV_ARCHIVE) (minutes; PACK_ENV=0 skips it)"; \
	  $(VENV)/bin/venv-pack -p $(VENV) -o $(ENV_ARCHIVE) -f -q $(PACK_EXCLUDE) \
	    $(if $(PYTHON_PREFIX),--python-prefix $(PYTHON_PREFIX)); \
	else rm -f $(ENV_ARCHIVE); fi
	@ls -l $(DIST)

# make submit MASTER=spark://host:7077 JOB=pipeline ARGS="--input ... --output ..."
submit: $(STAMP)
	@test -f $(PYZIP) || { echo "$(PYZIP) is missing: run 'make package' first" >&2; exit 2; }
	$(SPARK_SUBMIT) --master '$(MASTER)' --deploy-mode $(DEPLOY_MODE) --name dots-data:$(JOB) \
	  --py-files $(PYZIP) $(SUBMIT_ENV_ARGS) $(SUBMIT_CONF) $(DIST)/launch.py jobs.$(JOB) $(ARGS)
