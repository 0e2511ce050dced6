# ringwire: the two commands.
#   make demo   build in release mode and run the self-contained lab
#   make test   fmt, clippy -D warnings, every test (unit and privileged), benches built, a bounded fuzz run
SHELL := /bin/bash
CARGO ?= cargo
DEB_PACKAGES := clang libelf-dev zlib1g-dev libpcap-dev pkg-config tcpdump tshark netsniff-ng ethtool iproute2

FUZZ_SECONDS ?= 20

.PHONY: demo test deps build bench fuzz clean

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
	$(CARGO) test --workspace --locked --no-fail-fast
	$(CARGO) bench --workspace --locked --no-run
	$(MAKE) fuzz

# A bounded run of every cargo-fuzz target (the stable toolchain accepts the
# nightly-only sanitizer flags with RUSTC_BOOTSTRAP=1).
fuzz:
	@command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked
	cd fuzz && for t in builtin_parse frame_views frame_print control_request control_dispatch; do \
	  mkdir -p corpus/$$t; seeds=$$(test -d seeds/$$t && echo $$PWD/seeds/$$t); \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run $$t $$PWD/corpus/$$t $$seeds -- -max_total_time=$(FUZZ_SECONDS) || exit 1; \
	done

bench: build
	./target/release/ringwire-bench --rounds 5 --duration 4
	$(CARGO) bench -p ringwire-filters

clean:
	$(CARGO) clean
