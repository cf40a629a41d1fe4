# Berth: two commands on a fresh machine.
#   make up    installs prerequisites, builds binaries and the default engine image, runs Berth
#   make test  installs prerequisites, builds what the tests need, runs the whole suite
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: up test test-binaries prereqs build agent images image-default bench lint fmt openapi compat-venv

prereqs:
	@scripts/prereqs.sh

build: prereqs
	$(CARGO) build --release -p berth-control-plane -p broker-agent

# Engine images (images/README.md). Each build.sh run is a no-op when the image is up to date.
AGENT := target/release/broker-agent
ALL_IMAGES := rabbitmq/4.3 rabbitmq/4.0 rabbitmq/3.10 activemq/5.17
DEFAULT_IMAGE := rabbitmq/4.0

agent: prereqs
	$(CARGO) build --release -p broker-agent

# Every engine version Berth offers. A build that fails is tried once more: a mirror's
# transient failure (a Packages file that did not download) must not fail the whole run.
images: agent
	@set -e; for i in $(ALL_IMAGES); do \
	  images/build.sh $${i%/*} $${i#*/} $(AGENT) \
	    || { echo "[images] $$i failed; trying once more in 10 s" >&2; sleep 10; \
	         images/build.sh $${i%/*} $${i#*/} $(AGENT); }; \
	done

# Only the default engine (what `make up` needs; other versions are built on their first
# CreateBroker).
image-default: agent
	images/build.sh $(subst /, ,$(DEFAULT_IMAGE)) $(AGENT)

# aws CLI, boto3 and pika for the compatibility tests (tests/compat/), in target/compat-venv.
compat-venv: prereqs
	@scripts/compat-venv.sh

up: build image-default
	./target/release/berth serve

# The engine images and the test binaries build side by side (one is mostly dpkg and I/O,
# the other the compiler), then the suite runs.
test: prereqs compat-venv
	@$(MAKE) --no-print-directory -j2 -Otarget images test-binaries
	$(CARGO) test --workspace --no-fail-fast

test-binaries: prereqs
	$(CARGO) build -p berth-control-plane
	$(CARGO) test --workspace --no-run

bench: images build
	$(CARGO) bench -p berth-tests --bench lifecycle
	$(CARGO) bench -p berth-tests --bench ha
	$(CARGO) bench -p berth-tests --bench observability
	$(CARGO) bench -p berth-tests --bench api

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
