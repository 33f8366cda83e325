#!/usr/bin/env bash
# Runs every check, cheapest first: formatting, clippy (native and wasm), the web build, then
# all tests (unit, CLI, and the browser tests in headless Chromium, on WebGPU and on the CPU).
# Installs what is missing first (scripts/setup.sh --browser).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --browser
export PATH="$HOME/.cargo/bin:$PWD/.tools/node_modules/.bin:$PATH"

step() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

step "format"
cargo fmt --all --check

step "clippy (native: library, trainer, browser tests)"
cargo clippy --all-targets --locked -- -D warnings

step "clippy (web app, wasm32)"
cargo clippy -p amortize-web --target wasm32-unknown-unknown --locked -- -D warnings

step "web build (trunk, release)"
trunk build

step "tests (unit, CLI, shipped weights, browser)"
cargo test --release --locked -- --test-threads=1
