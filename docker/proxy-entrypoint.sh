#!/bin/sh
# Entrypoint of the proxy image: wait for each file named in $WAIT_FOR (space-separated,
# none by default) for at most $WAIT_TIMEOUT seconds (300), then run dnsupdate-proxy with
# the container's arguments. docker-compose.yml waits for the DC's "ready" mark: a proxy
# started before the DC has provisioned and exported its keytab would exit at once (and
# podman-compose before 4.6's podman does not wait for the DC's health check).
# A file still missing at the deadline: a message naming it (and $WAIT_HINT), exit 1.
set -eu
timeout=${WAIT_TIMEOUT:-300}
start=$(date +%s)
for file in ${WAIT_FOR:-}; do
    if [ ! -e "$file" ]; then
        echo "dnsupdate-proxy-entrypoint: waiting up to ${timeout} s for $file${WAIT_HINT:+ ($WAIT_HINT)}" >&2
    fi
    until [ -e "$file" ]; do
        if [ $(($(date +%s) - start)) -ge "$timeout" ]; then
            echo "dnsupdate-proxy-entrypoint: gave up after ${timeout} s: $file does not exist${WAIT_HINT:+ ($WAIT_HINT)}" >&2
            exit 1
        fi
        sleep 1
    done
done
exec dnsupdate-proxy "$@"
