# srt-slurm developer and user entry points. `make help` lists them.
# Values given on the command line (ARCH, RUN_ID) reach the recipes through the environment and
# are expanded by the shell inside double quotes, never pasted into the command text.

SHELL := /bin/bash
.DEFAULT_GOAL := help

ARCH ?= $(shell uname -m)
RUN_ID ?=
export ARCH RUN_ID

# The project venv when there is one, else whatever python3/srtctl is on PATH.
PY := $(if $(wildcard .venv/bin/python),.venv/bin/python,python3)
SRTCTL := $(if $(wildcard .venv/bin/srtctl),.venv/bin/srtctl,srtctl)
VENV_PYTHON ?= python3

# run_script NAME ARGS: run scripts/NAME, or say clearly that it does not exist yet.
define run_script
	@if [ -x scripts/$(1) ]; then scripts/$(1) $(2); \
	else echo "make $@: scripts/$(1) is missing (or not executable): nothing to run" >&2; exit 1; fi
endef

.PHONY: help setup setup-binaries sync-to-cloud sync-run cluster-up cluster-down cluster-status test test-unit \
	demo dynamo-venv venv

help:
	@echo "make setup [ARCH=x86_64|aarch64]  write srtslurm.yaml, fetch NATS/etcd (default ARCH: uname -m)"
	@echo "make setup-binaries [ARCH=...]     fetch only NATS/etcd again (srtslurm.yaml untouched)"
	@echo "make sync-to-cloud                 upload every run to S3 (srtctl sync --all)"
	@echo "make sync-run RUN_ID=<id>          upload one run (srtctl sync <id>)"
	@echo "make test                          whole suite: deps, .venv, loopback-only netns, local SLURM cluster"
	@echo "make test-unit                     tests not marked 'cluster', no cluster, in the current network"
	@echo "make cluster-up / cluster-down / cluster-status   the local SLURM cluster (docs/testing.md)"
	@echo "make demo                          simulated end-to-end run (scripts/demo)"
	@echo "make dynamo-venv                   build the cached CPU-only Dynamo venv"
	@echo "make venv                          create .venv with the project and its test extras"

setup:
	$(PY) -m launcher.setup_cmd --arch "$$ARCH"

setup-binaries:
	$(PY) -m launcher.setup_cmd --arch "$$ARCH" --binaries-only

sync-to-cloud:
	$(SRTCTL) sync --all

sync-run:
	@if [ -z "$$RUN_ID" ]; then echo "usage: make sync-run RUN_ID=<run_id>" >&2; exit 2; fi
	$(SRTCTL) sync "$$RUN_ID"

cluster-up:
	$(call run_script,install-system-deps,)
	$(call run_script,local-cluster,up)

cluster-down:
	$(call run_script,local-cluster,down)

cluster-status:
	$(call run_script,local-cluster,status)

test:
	$(call run_script,run-tests,)

test-unit:
	@$(PY) -m pytest -q -rs -m "not cluster"; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test-unit: no tests collected" >&2; exit 1; fi; exit $$rc

demo:
	$(call run_script,demo,)

dynamo-venv:
	$(call run_script,dynamo-venv,)

venv:
	@if [ ! -x .venv/bin/python ]; then $(VENV_PYTHON) -m venv .venv; fi
	.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test,router,report]'
