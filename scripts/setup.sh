#!/usr/bin/env bash
# Set up a machine for HSĐT: Debian packages that are missing, then .venv with the package.
# Usage: scripts/setup.sh [test]   (test: also the test dependencies)
# Idempotent and quick when nothing changed: a stamp keyed by pyproject.toml's hash.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  softhsm2 opensc            # PKCS#11 token for tests and the demo (SoftHSM2)
  poppler-utils qpdf         # independent readers: pdfsig, pdftotext, qpdf --check
  libnss3-tools              # pdfsig's NSS
  libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz0b libharfbuzz-subset0 fontconfig  # WeasyPrint
  radosgw ceph-mon ceph-osd uuid-runtime curl  # S3 Object Lock for tests (scripts/services.sh)
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "» Cài gói hệ thống còn thiếu: ${missing[*]}"
  if [[ $(id -u) -ne 0 ]]; then
    echo "Cần quyền root để cài: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The interpreter: $PYTHON if given, else python3 from PATH. Not Debian 12's /usr/bin/python3
# although its profile-guided build verifies ~12 % faster: its 3.11.2 predates the fix for
# CPython gh-94777 (3.11.5), so a verification process killed mid-batch (the OOM killer) left
# the ingesting process hanging at exit, as tests/test_archive_batch.py showed.
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11, 5))'; then
  echo "Cần Python ≥ 3.11.5 (đang có: $("$PYTHON" --version 2>&1)); chọn bằng PYTHON=… make setup." >&2
  exit 1
fi
[[ -x .venv/bin/python ]] || "$PYTHON" -m venv .venv

extra=""
[[ "${1:-}" == "test" ]] && extra="[test]"
stamp=".venv/.hsdt-installed-$(sha256sum pyproject.toml | cut -c1-16)${extra:+-test}"
if [[ ! -f "$stamp" ]]; then
  echo "» Cài gói Python (hsdt${extra}) vào .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".${extra}"
  touch "$stamp"
fi
