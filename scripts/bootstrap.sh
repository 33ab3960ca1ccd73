#!/usr/bin/env bash
# Set up .venv (Python >= 3.12, the package and its test extra) and run one job:
#   scripts/bootstrap.sh report   - validate the evidence and regenerate reports/
#   scripts/bootstrap.sh test     - run the whole test suite
# Idempotent: the install step is skipped while pyproject.toml is unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
job="${1:-report}"
shift || true

find_python() {
  local candidates=(python3.13 python3.12 python3.14 python3)
  for c in "${candidates[@]}"; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
      command -v "$c"; return 0
    fi
  done
  if command -v pyenv >/dev/null 2>&1; then
    local root; root="$(pyenv root)"
    for v in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.(12|13|14)(\.|$)' | sort -V); do
      if [ -x "$root/versions/$v/bin/python3" ]; then echo "$root/versions/$v/bin/python3"; return 0; fi
    done
  fi
  return 1
}

if [ ! -x .venv/bin/python ]; then
  py="$(find_python)" || { echo "error: blinameta needs Python 3.12 or newer (PyMC 6 and ArviZ 1.x require it); none found" >&2; exit 2; }
  echo "setting up .venv with $py" >&2
  "$py" -m venv .venv
fi
stamp=.venv/.blinameta-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
  touch "$stamp"
fi

case "$job" in
  report)
    .venv/bin/blinameta validate
    if .venv/bin/blinameta --help | grep -q '^  report'; then
      .venv/bin/blinameta report "$@"
    fi
    ;;
  test)
    # The browser tests need Debian's chromium; install it when we can (root, apt).
    if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "installing chromium for the browser tests" >&2
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
        || echo "warning: could not install chromium; the browser tests will fail" >&2
    fi
    # Two workers by default (CI has 2 cores): pytest-xdist spreads the slow calibration tests.
    # BLINAMETA_TEST_WORKERS=0 runs in one process.
    set +e
    .venv/bin/python -m pytest -n "${BLINAMETA_TEST_WORKERS:-2}" "$@"
    status=$?
    set -e
    if [ "$status" = 5 ]; then
      echo "error: pytest collected no tests" >&2
      exit 1
    fi
    exit "$status"
    ;;
  *)
    echo "usage: scripts/bootstrap.sh report|test [ARGS...]" >&2
    exit 2
    ;;
esac
