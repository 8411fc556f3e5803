#!/bin/sh
# Appends one record each time it starts and one a minute after that; the records live in the
# named volume `records`, which no deploy or rollback may remove.
set -e
echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) start" >> /data/records.log
echo "worker: $(wc -l < /data/records.log) records in /data/records.log"
while true; do
  sleep 60
  echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) tick" >> /data/records.log
done
