# rotafetch — the two commands people need: `make demo` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
export PATH := $(CURDIR)/node_modules/.bin:$(HOME)/.cargo/bin:$(PATH)
export WASM_BINDGEN_TEST_TIMEOUT ?= 180
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER := wasm-bindgen-test-runner

SERVER := target/server/rotafetch-server
# The npm package's crate features: no std, and a panic traps (see Cargo.toml).
PKG_FEATURES := --no-default-features --features js,small-alloc,panic-trap
# Panic locations name source files: keep the build machine's paths (its home, the cargo
# registry, the checkout, and the toolchain's own library sources, which rustc names by their
# local path once the rust-src component is installed) out of the shipped .wasm.
CARGO_HOME ?= $(HOME)/.cargo
RUST_SRC := $(shell rustc --print sysroot)/lib/rustlib/src/rust
PKG_RUSTFLAGS := --remap-path-prefix=$(CARGO_HOME)/registry/src/= --remap-path-prefix=$(CURDIR)/= \
  --remap-path-prefix=$(RUST_SRC)/=/rustc/
# The demo's access tokens live 15 s so rotation is visible; the reuse grace (lost-response
# rule) is shorter than that, so the "stolen token" simulation is caught as reuse.
DEMO_FLAGS := --listen 127.0.0.1:8080 --db target/demo.db --www www --pkg pkg $(shell cat scripts/demo.flags)

.PHONY: all setup setup-build pkg examples doc server demo test test-native test-browser test-e2e lint fmt bench bench-server bench-baseline bench-tools clean

all: pkg server

# Everything the suites need (browsers, drivers, PostgreSQL included).
setup:
	@scripts/setup.sh

# What building needs (make pkg, make demo, make lint): no browser, no PostgreSQL.
setup-build:
	@scripts/setup.sh build

# The npm package (web target: works in <script type="module"> pages and in bundlers).
# scripts/pkg.sh: a build-std build where rust-src is installed, else the normal one.
pkg: setup-build
	@mkdir -p target
	flock target/.pkg.lock env PKG_RUSTFLAGS='$(PKG_RUSTFLAGS)' PKG_FEATURES='$(PKG_FEATURES)' scripts/pkg.sh
	@ls -l pkg/*.wasm pkg/*.js

# The example apps (Vite + TypeScript on the npm package, Rust on the crate) that
# e2e/packages.test.mjs drives; see scripts/examples.sh.
examples: pkg
	scripts/examples.sh

# rustdoc of the SDK and the Rust example, for the browser target: any warning fails, and
# every doc example must compile for wasm32 (they are `no_run`: nothing to run them in).
doc:
	RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --target wasm32-unknown-unknown -p rotafetch -p rotafetch-example-rust
	cargo test --doc --target wasm32-unknown-unknown -p rotafetch

server:
	@mkdir -p target
	flock target/.server.lock cargo build -p rotafetch-server --profile server

demo: pkg server
	@echo "rotafetch demo on http://127.0.0.1:8080 (Ctrl-C stops it)"
	$(SERVER) $(DEMO_FLAGS)

test: setup lint doc test-native test-browser test-e2e
	@echo "make test: every suite passed"

# The Rust suites, and the JS rules that ship as JS (js/*.test.mjs: sign-in's, in Node).
test-native:
	cargo test --workspace
	node --test js/

# The wasm browser suites in Chromium, Firefox and WebKit (ENGINES="firefox" for one), against
# one server. xvfb-run wraps the whole command (WebKit needs a display), so no Xvfb or driver
# process outlives it.
test-browser: setup server
	xvfb-run -a scripts/with-server.sh --access-ttl 2 --reuse-grace 5 --test-faults --dpop-nonce --dpop-nonce-period 5 -- \
	  scripts/browser-tests.sh

# Every e2e/*.test.mjs, one file at a time (they start their own servers and browsers).
test-e2e: setup pkg server examples
	node --test --test-concurrency=1 e2e/

# Rust: rustfmt and clippy on both targets. JS: tsc --checkJs of the driver and the plumbing
# against the core's declared interface (js/tsconfig.json, js/core.d.ts).
lint: setup-build
	tsc -p js
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy --target wasm32-unknown-unknown --lib --tests -- -D warnings
	cargo clippy --target wasm32-unknown-unknown -p rotafetch-example-rust --no-deps -- -D warnings
	cargo clippy --target wasm32-unknown-unknown -p rotafetch --lib $(PKG_FEATURES) -- -D warnings
	cargo clippy --target wasm32-unknown-unknown -p rotafetch --lib --no-default-features --features std -- -D warnings

fmt:
	cargo fmt --all

# Size, per-request and storm figures (browser), then the server's: rotations beside node
# oidc-provider, and the abuse figures (floods, slow clients). With target/bench/baseline/
# (`make bench-baseline`: the server before issue #25's hardening) the abuse figures have
# before/after rows.
bench: setup pkg bench-tools
	node bench/run.mjs
	$(MAKE) --no-print-directory bench-server

# The server figures alone (no browser): bench/server.mjs and bench/abuse.mjs. The abuse
# figures' measuring process runs without V8's memory reducer: its idle-time full collections
# stalled the process that times the users by 5-20 ms (--trace-gc), on either side of a figure.
bench-server: bench-tools
	node bench/server.mjs
	BENCH_BASELINE_BIN=$(wildcard $(CURDIR)/target/bench/baseline/rotafetch-server) node --no-memory-reducer bench/abuse.mjs

bench-baseline:
	scripts/bench-baseline.sh

# What the benches run besides the server: the dpop::verify micro-measure, bench/'s packages.
bench-tools: server
	flock target/.server.lock cargo build -p rotafetch-server --profile server --example dpop_verify_cost
	node bench/lib/deps.mjs

clean:
	rm -rf pkg target/e2e target/bench target/examples examples/vite-ts/dist
