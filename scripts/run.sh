#!/usr/bin/env bash
# `make run`: starts cebusd in the foreground. Without CEBUS_DATABASE_URL,
# cebusd starts its embedded PostgreSQL under ./var/. Without
# CEBUS_ADMIN_KEY, a platform admin key is generated once into
# ./var/admin.key (readable by root only) and reused on later runs, so the
# address and the key can be printed every time.
set -euo pipefail
build=${1:-build}
cd "$(dirname "$0")/.."
mkdir -p var
if [ -z "${CEBUS_ADMIN_KEY:-}" ]; then
  if [ ! -s var/admin.key ]; then
    umask 077
    printf 'cb_admin_%s\n' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" > var/admin.key
  fi
  CEBUS_ADMIN_KEY=$(cat var/admin.key)
  export CEBUS_ADMIN_KEY
fi
listen=${CEBUS_LISTEN:-127.0.0.1:50051}
echo "cebus: address    $listen"
echo "cebus: admin key  $CEBUS_ADMIN_KEY"
echo "cebus: try        export CEBUS_ADDR=$listen CEBUS_API_KEY=\$(cat var/admin.key); $build/cebus health"
exec "$build/cebusd" --data-dir var --listen "$listen"
