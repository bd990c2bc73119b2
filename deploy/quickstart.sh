#!/usr/bin/env bash
# Quickstart: install, build, start the collector on its embedded SQLite
# store, profile a demo program, print its hot functions and where to look.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "quickstart: not yet — the collector and agent pipeline are being built; use ./deploy/test.sh"
exit 1
