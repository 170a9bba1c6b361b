# Shared by scripts/*: create .venv and install the project when needed (idempotent, quiet).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3}"

ensure_venv() {
  local extra="${1:-}"
  local stamp="$VENV/.installed${extra:+-$extra}"
  if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
  fi
  if [ ! -f "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ]; then
    echo "installing orchestrator${extra:+[$extra]} into .venv ..." >&2
    local log="$VENV/install.log"
    local target="$ROOT"
    [ -n "$extra" ] && target="$ROOT[$extra]"
    if ! { "$VENV/bin/python" -m pip install -q --upgrade pip && "$VENV/bin/python" -m pip install -q -e "$target"; } >"$log" 2>&1; then
      cat "$log" >&2
      echo "install failed (log above, also in $log)" >&2
      exit 1
    fi
    touch "$stamp"
  fi
}
