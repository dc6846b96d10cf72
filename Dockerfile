# dnsupdate-proxy: the relay (no lab). Used by docker-compose.yml; build alone with
#   docker build -t dnsupdate-proxy .
# and run with the configuration, keytab and krb5.conf mounted under /etc/dnsupdate-proxy.
# PYTHON_IMAGE names another base with Python 3.11 and pip on Debian 12 (e.g. a local one:
# scripts/compose-test.sh builds its own where no image registry can be reached).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# python-gssapi has no Linux wheels: build it (and the project) against libkrb5 here
FROM ${PYTHON_IMAGE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libkrb5-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# the whole context (.dockerignore leaves out tests, caches, .git): every package pyproject
# lists, whatever they are named
COPY . .
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgssapi-krb5-2 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10053 --home-dir /var/lib/dnsupdate-proxy --create-home dnsproxy
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/*.whl && rm -rf /wheels
COPY docker/proxy-entrypoint.sh /usr/local/bin/dnsupdate-proxy-entrypoint
USER dnsproxy
EXPOSE 53/udp 53/tcp 8053/tcp
# The entrypoint waits for the files in $WAIT_FOR (none by default), then runs dnsupdate-proxy
ENTRYPOINT ["/usr/local/bin/dnsupdate-proxy-entrypoint"]
CMD ["serve", "--config", "/etc/dnsupdate-proxy/proxy.toml"]
