#!/usr/bin/env bash
# Serves the demo with the shipped weights on http://127.0.0.1:8080/ (installs what is missing).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PWD/.tools/node_modules/.bin:$PATH"
ls public/weights/*.amz >/dev/null 2>&1 || {
  echo "no weights in public/weights/: train and export a model first (see README)" >&2
  exit 1
}
echo
echo "  amortize demo (after the build below): http://127.0.0.1:${PORT:-8080}/"
echo
exec trunk serve --port "${PORT:-8080}"
