#!/usr/bin/env bash
# Installs the Debian packages cebus needs to build, run and test, when any
# is missing. Idempotent; quiet when everything is present.
set -euo pipefail
pkgs=(build-essential cmake pkg-config libgrpc-dev protobuf-c-compiler libprotobuf-c-dev
      libjansson-dev libcmocka-dev libpq-dev libssl-dev libprotobuf-dev protobuf-compiler
      protobuf-compiler-grpc python3-grpcio python3-protobuf postgresql clang libclang-rt-14-dev valgrind openssl)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps: installing ${missing[*]}" >&2
SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
