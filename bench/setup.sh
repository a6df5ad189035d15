#!/usr/bin/env bash
# Sets up the benchmarks (bench/README.md): bench/.venv with the project and the peers it is
# compared against (bench/requirements.txt, pinned), and wrk from Debian when it is missing.
# The project's own .venv is left alone (`make test` or `make run` creates it).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"

if ! command -v wrk >/dev/null 2>&1; then
  echo "bench/setup.sh: wrk is missing; installing it from Debian (apt-get install -y wrk)"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq wrk
fi

if [ ! -x .venv/bin/changarrito ]; then
  echo "bench/setup.sh: .venv is missing; run 'make test' or 'make run' first (README)" >&2
  exit 1
fi

"$PYTHON" -m venv bench/.venv
bench/.venv/bin/python -m pip install --quiet --upgrade pip
# The project's own pins too, so the benches run the versions `serve` runs in .venv.
bench/.venv/bin/python -m pip install --quiet -c constraints.txt -e . -r bench/requirements.txt
touch bench/.venv/.installed-stamp
echo "bench/setup.sh: ready (bench/.venv, $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2))"
