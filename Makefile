# Berth: two commands on a fresh machine.
#   make up    installs prerequisites, builds binaries and engine images, runs Berth
#   make test  installs prerequisites, builds what the tests need, runs the whole suite
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: up test prereqs build images bench lint fmt openapi compat-venv

prereqs:
	@scripts/prereqs.sh

build: prereqs
	$(CARGO) build --release -p berth-control-plane -p broker-agent

images: prereqs
	$(CARGO) build --release -p broker-agent
	images/build.sh rabbitmq 4.0 target/release/broker-agent

# aws CLI, boto3 and pika for the compatibility tests (tests/compat/), in target/compat-venv.
compat-venv: prereqs
	@scripts/compat-venv.sh

up: build images
	./target/release/berth serve

test: images compat-venv
	$(CARGO) build -p berth-control-plane
	$(CARGO) test --workspace --no-fail-fast

bench: images
	$(CARGO) bench -p berth-tests --bench lifecycle

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
