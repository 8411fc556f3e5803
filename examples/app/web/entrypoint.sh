#!/bin/sh
# Serves /health (the process is up), /ready (its settings are present), /version and /cgi-bin/slow (3 s).
set -e
cp /app/VERSION /www/version
if [ -n "$FAIL_HEALTH" ]; then
  echo "web: FAIL_HEALTH is set, so /health will not answer (simulated broken release)" >&2
else
  echo ok > /www/health
fi
missing=""
for name in SECRET_KEY DATABASE_URL; do
  eval "value=\${$name:-}"
  [ -n "$value" ] || missing="$missing $name"
done
if [ -z "$missing" ]; then echo ready > /www/ready; else echo "web: not ready, missing:$missing" >&2; fi
echo "web: version $(cat /app/VERSION) listening on :8080 (APP_ENV=${APP_ENV:-unset})"
exec httpd -f -p 8080 -h /www
