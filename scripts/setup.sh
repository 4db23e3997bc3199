#!/usr/bin/env bash
# Install what DotDB needs to build and test (Debian/Ubuntu).  Safe to run
# again: packages already present are skipped.
#   scripts/setup.sh            build + test dependencies
#   scripts/setup.sh --bench    also the benchmark peers (LMDB, SQLite, Redis)
#   scripts/setup.sh --model    also the SPIN model checker (scripts/model.sh)
#   scripts/setup.sh --fuzz     also clang and its runtime with libFuzzer
#                               (scripts/fuzz.sh)
# Flags combine: scripts/setup.sh --bench --model --fuzz.
set -euo pipefail

pkgs=(build-essential cmake pkg-config libev-dev libcjson-dev liblz4-dev libxxhash-dev libcriterion-dev libpcre2-dev strace valgrind)
for arg in "$@"; do
  case "$arg" in
    --bench) pkgs+=(liblmdb-dev libsqlite3-dev redis-server libhiredis-dev gnuplot-nox) ;;
    --model) pkgs+=(spin) ;;
    # libFuzzer and the sanitizer runtimes live in libclang-rt-14-dev
    # (Debian 12's clang is clang-14).
    --fuzz) pkgs+=(clang libclang-rt-14-dev) ;;
    *) echo "setup: unknown option $arg (expected --bench, --model, --fuzz)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "setup: all dependencies present"
  exit 0
fi

sudo=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "setup: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
