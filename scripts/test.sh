#!/usr/bin/env bash
# The README's test command runs this (via `make test`): the whole suite — unit, integration on real servers
# (tansu, redis-server, chdb started by the fixtures through `spendstream services`), and faults.
# pytest's exit code 5 (no tests collected) is a failure here.
set -uo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
"$VENV/bin/spendstream" schemas check || { echo "schemas check failed: an incompatible schema change" >&2; exit 1; }
"$VENV/bin/pytest" "${@:-tests}" -p no:cacheprovider
rc=$?
if [ "$rc" -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi
exit "$rc"
