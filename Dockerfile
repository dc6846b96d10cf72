# dnsupdate-proxy: the relay (no lab). Used by docker-compose.yml; build alone with
#   docker build -t dnsupdate-proxy .
# and run with the configuration, keytab and krb5.conf mounted under /etc/dnsupdate-proxy.

# python-gssapi has no Linux wheels: build it (and the project) against libkrb5 here
FROM python:3.11-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libkrb5-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY proxy/ proxy/
COPY kerberos/ kerberos/
COPY acl/ acl/
COPY lab/ lab/
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgssapi-krb5-2 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10053 --home-dir /var/lib/dnsupdate-proxy --create-home dnsproxy
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/*.whl && rm -rf /wheels
USER dnsproxy
EXPOSE 53/udp 53/tcp 8053/tcp
ENTRYPOINT ["dnsupdate-proxy"]
CMD ["serve", "--config", "/etc/dnsupdate-proxy/proxy.toml"]
