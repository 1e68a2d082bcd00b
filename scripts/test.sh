#!/usr/bin/env bash
# scripts/test.sh — run the whole agentbus test suite against a real PostgreSQL.
#
#   scripts/test.sh                 # everything
#   scripts/test.sh fencing         # only tests whose name contains "fencing"
#
# The database comes from scripts/pg-local.sh (DATABASE_URL, else 127.0.0.1:5432, else a
# private cluster it starts). Each test creates its own database from a migrated template
# and drops it afterwards, so tests run in parallel and leave nothing behind. The role in
# the URL must be allowed to create databases.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "test.sh: cargo not found; install Rust 1.80 or newer (https://rustup.rs)" >&2
  exit 1
fi

url=$(scripts/pg-local.sh)
export AGENTBUS_TEST_DATABASE_URL="$url"
echo "test.sh: testing against ${url#*@}" >&2

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --no-fail-fast "$@"
else
  cargo test --no-fail-fast -- "$@"
fi
