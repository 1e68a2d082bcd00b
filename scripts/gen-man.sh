#!/usr/bin/env bash
# scripts/gen-man.sh — regenerate man/*.1 from the clap definitions (commit the result).
# The test `cli::docs::man_pages_match_the_clap_definitions` fails until this is run after a
# change to any command's flags or help.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
AGENTBUS_BLESS_MAN=1 cargo test --quiet --test it -- cli::docs::man_pages_match_the_clap_definitions >&2
ls man/
