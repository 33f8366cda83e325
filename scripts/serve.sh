#!/usr/bin/env bash
# Serves the demo with the shipped weights on http://127.0.0.1:8080/ (PORT overrides it),
# installing what is missing first. It builds the app with trunk (release) and serves dist/ as
# a web host would: gzip-compressed WebAssembly and text (the download is the compressed size)
# and entity tags, so the browser caches the app and the weights. For live reloading while
# editing the web crate, run `trunk serve` instead (uncompressed).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PWD/.tools/node_modules/.bin:$PATH"
ls public/weights/*.amz >/dev/null 2>&1 || {
  echo "no weights in public/weights/: train and export a model first (see README)" >&2
  exit 1
}
trunk build
# Builds the server if needed, then prints the address it serves.
exec cargo run --release --locked -p amortize-serve
