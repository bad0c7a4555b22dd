#!/usr/bin/env bash
# Runs the whole test suite (called by `make test`). Where the kernel allows it, inside a private
# network namespace that has only a loopback device, so no DDS packet can leave this host whatever a
# test does; the project's Fast DDS profile keeps traffic on shared memory either way.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTEST=("$ROOT/.venv/bin/python" -m pytest "$@")
if [ -z "${DFER_NO_NETNS:-}" ] && unshare -rn true 2>/dev/null; then
  echo "tests: running in a loopback-only network namespace"
  exec unshare -rn bash -c 'ip link set lo up 2>/dev/null || true; exec "$@"' bash "${PYTEST[@]}"
fi
echo "tests: no private network namespace here (unshare -rn refused); DDS stays local through config/fastdds_localhost.xml"
exec "${PYTEST[@]}"
