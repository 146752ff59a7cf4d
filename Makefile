# stacklift: every set-up step lives here, so `make demo` and `make test` work on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
COLLECTION_LINK := .cache/collections/ansible_collections/stacklift/migrate
# awx.awx as the `ansible` package on PyPI ships it (Galaxy is not reachable here): that one collection
# taken from the pinned wheel, not the whole package.
AWX_FROM := ansible==12.3.0
AWX_COLLECTION := .cache/collections/ansible_collections/awx/awx/MANIFEST.json
LAB := $(BIN)/python lab/lab.py
LAB_NODES ?= 2
export LAB_NODES
# make demo ENCRYPT=1: the demo's archives encrypted at rest
export ENCRYPT
# make demo ENGINE=docker: the demo on the lab hosts' Docker engines (podman by default)
ENGINE ?= podman
export ENGINE
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PODMAN_IGNORE_CGROUPSV1_WARNING := 1

# System packages the controller needs (Debian names), installed only when missing.
SYSTEM_PACKAGES := debootstrap netcat-openbsd gcc libc6-dev iproute2 util-linux openssh-client tar zstd shellcheck git

.PHONY: help deps venv collection lab lab-status lab-down test unit units integration sanity lint demo demo-fleet bench bench-fleet bench-memory build clean

help:
	@echo "make demo        build the lab, run the shop on node1, migrate it to node2 under load (the main job)"
	@echo "                 (ENCRYPT=1: with the archives encrypted at rest; ENGINE=docker: on Docker)"
	@echo "make demo-fleet  a three-host lab; node1 runs three stacks, drained to node2 and node3 at once"
	@echo "make test        unit and integration tests; starts the lab"
	@echo "make lab | lab-status | lab-down   the N-host lab (LAB_NODES=$(LAB_NODES))"
	@echo "make build       the collection tarball"

deps: .cache/deps.stamp
.cache/deps.stamp: Makefile
	@mkdir -p .cache
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@touch $@

venv: $(BIN)/.stamp
$(BIN)/.stamp: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip 2> >(grep -v '^WARNING: Location' >&2)
	$(BIN)/pip install -q -r requirements.txt 2> >(grep -v '^WARNING: Location' >&2)
	$(BIN)/python -c "import ansible, docker, paramiko, jmespath, molecule, pytest, ansible_runner, antsibull_docs"
	@touch $@

# Ansible finds the collection by its FQCN through this link to the checkout; awx.awx beside it, for the
# AWX set-up playbook (examples/awx/controller.yml) and its checks.
collection: $(COLLECTION_LINK) $(AWX_COLLECTION)
$(COLLECTION_LINK):
	@mkdir -p $(dir $@)
	ln -sfn $(CURDIR) $@

$(AWX_COLLECTION): | venv
	@mkdir -p .cache/wheels
	$(BIN)/pip download -q --no-deps $(AWX_FROM) -d .cache/wheels 2> >(grep -v '^WARNING: Location' >&2)
	$(BIN)/python -c "import glob, zipfile; z = zipfile.ZipFile(sorted(glob.glob('.cache/wheels/ansible-*.whl'))[-1]); \
	  z.extractall('.cache/collections', [n for n in z.namelist() if n.startswith('ansible_collections/awx/awx/')])"
	@test -f $@

lab: deps venv collection
	$(LAB) up --nodes $(LAB_NODES)

lab-status:
	@$(LAB) status

lab-down:
	@if [ -x $(BIN)/python ]; then $(LAB) down; else $(PYTHON) lab/lab.py down; fi

unit: venv collection
	$(BIN)/pytest -q tests/unit

integration: LAB_NODES = 3
integration: lab
	$(BIN)/pytest -q tests/integration

# Unit and integration tests (the lab is started, three hosts for the fleet tests, never skipped), then
# ansible-test sanity and ansible-lint.
test: LAB_NODES = 3
test: lab
	$(BIN)/pytest tests/unit tests/integration
	$(MAKE) --no-print-directory sanity units lint

sanity: deps venv
	bash tests/sanity/run.sh sanity

# The unit tests as ansible-test runs them (its own pytest, the collection loader), beside pytest's run.
units: deps venv collection
	bash tests/sanity/run.sh units

lint: venv collection
	$(BIN)/ansible-lint --offline -q
	$(BIN)/antsibull-changelog lint
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/antsibull-docs lint-collection-docs --plugin-docs .

# The e-commerce stack migrated from node1 to node2 while a client uses it (examples/shop/demo.sh).
demo: lab
	@echo; echo "== the lab's hosts =="; $(LAB) status
	@echo; bash examples/shop/demo.sh

# Modules and the stack migration against bare podman/ssh commands, measured in the same run.
# Three stacks on node1 (two shops, a Redis), drained at once to node2 and node3 (examples/fleet/demo.sh).
demo-fleet: LAB_NODES = 3
demo-fleet: lab
	@echo; bash examples/fleet/demo.sh

# Three stacks drained at once against each alone (bench/bench_fleet.py), on three hosts.
bench-fleet: LAB_NODES = 3
bench-fleet: lab
	$(BIN)/python bench/bench_fleet.py

# make bench: Podman, then where a large service's pause goes (bench-memory); make bench ENGINE=docker: the
# Docker engine (and the demo on Podman in the same run)
bench: lab
	$(BIN)/python bench/$(if $(filter docker,$(ENGINE)),bench_docker.py,bench.py)
	$(if $(filter docker,$(ENGINE)),,$(BIN)/python bench/memory.py)

# A Redis of 1 and 3 GiB moved eager and lazy under a client, against the bare podman commands, with the
# breakdown of each step (MEMORY_BENCH="--sizes 1 --rounds 1" for a quick one)
bench-memory: lab
	$(BIN)/python bench/memory.py $(MEMORY_BENCH)

build: venv
	$(BIN)/ansible-galaxy collection build --force .

clean: lab-down
	rm -rf $(VENV) .cache stacklift-migrate-*.tar.gz
