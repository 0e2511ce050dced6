# ringwire: the two commands.
#   make demo   build in release mode and run the self-contained lab
#   make test   fmt, clippy -D warnings, every test (unit and privileged)
SHELL := /bin/bash
CARGO ?= cargo
DEB_PACKAGES := clang libelf-dev zlib1g-dev libpcap-dev pkg-config tcpdump netsniff-ng ethtool iproute2

.PHONY: demo test deps build bench clean

deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "need root to install:$$missing" >&2; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

build: deps
	$(CARGO) build --release --workspace --locked

demo: build
	./target/release/ringwire demo

test: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	$(CARGO) build --workspace --locked
	$(CARGO) test --workspace --locked

bench: build
	bash bench/scripts/capture-bench.sh

clean:
	$(CARGO) clean
