#!/bin/sh
# Samba AD DC for docker-compose.yml. First start: provision AD.EXAMPLE.TEST (everything,
# smb.conf included, in $DC on the "samba" volume), create the lab accounts, export their
# keytabs to $EXPORT, add the reverse zone. Every start: make the proxy's HTTPS certificate
# (self-signed, proxy-cert.pem and proxy-key.pem) and its API token (http.token, random)
# if $EXPORT has none, run samba in the foreground, copy its TLS CA to $EXPORT, which the
# proxy mounts read-only, then mark $EXPORT ready (the proxy waits for that mark). The
# accounts are lab/samba_topology.py's (docker/samba/accounts.json).
set -eu
: "${DC_IP:?set DC_IP to the address of this container}"
ADMIN_PASSWORD=${ADMIN_PASSWORD:-Lab-Admin-Pass1!}
PROXY_UID=${PROXY_UID:-10053}
REVERSE_ZONE=${REVERSE_ZONE:-1.0.10.in-addr.arpa}
DC=${DC:-/var/lib/samba/dc}
EXPORT=${EXPORT:-/export}
LAB_FILES=${LAB_FILES:-/opt/lab}

rm -f "$EXPORT/ready"  # a mark left by the previous start
fresh=0
if [ ! -f "$DC/private/sam.ldb" ]; then
    samba-tool domain provision --use-rfc2307 --targetdir="$DC" \
        --realm=AD.EXAMPLE.TEST --domain=ADEX --server-role=dc --dns-backend=SAMBA_INTERNAL \
        --adminpass="$ADMIN_PASSWORD" --host-name=dc1 --host-ip="$DC_IP" \
        --option="dns forwarder =" \
        --option="disable netbios = yes" \
        --option="server services = -nbt -wrepl -ntp_signd -s3fs -winbindd -kcc -drepl" \
        --option="ldap server require strong auth = allow_sasl_over_tls"
    mkdir -p "$EXPORT"
    sed -e "s#/var/lib/samba/dc/#$DC/#" -e "s#\"/export\"#\"$EXPORT\"#" "$LAB_FILES/accounts.json" \
        | /usr/bin/python3 -I "$LAB_FILES/samba_accounts.py"
    fresh=1
fi

if [ ! -f "$EXPORT/http.token" ]; then
    python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > "$EXPORT/http.token"
fi
if [ ! -f "$EXPORT/proxy-key.pem" ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
        -subj "/CN=proxy.ad.example.test" \
        -addext "subjectAltName=DNS:proxy.ad.example.test,DNS:localhost,IP:127.0.0.1" \
        -keyout "$EXPORT/proxy-key.pem" -out "$EXPORT/proxy-cert.pem" 2>/dev/null
fi

samba -s "$DC/etc/smb.conf" -i -M single &
pid=$!
trap 'kill -TERM $pid 2>/dev/null' EXIT TERM INT
until dig +time=1 +tries=1 +short @127.0.0.1 dc1.ad.example.test A | grep -q .; do
    kill -0 $pid
    sleep 0.5
done
tries=0
while [ "$fresh" = 1 ] && ! samba-tool dns zonecreate 127.0.0.1 "$REVERSE_ZONE" \
        -s "$DC/etc/smb.conf" -U "Administrator%$ADMIN_PASSWORD" --use-kerberos=off; do
    tries=$((tries + 1))  # DNS answers before the RPC server listens
    [ "$tries" -lt 30 ]
    sleep 1
done
cp "$DC/private/tls/ca.pem" "$EXPORT/ca.pem"
chown "$PROXY_UID" "$EXPORT"/*.keytab "$EXPORT/http.token" "$EXPORT/proxy-key.pem"
chmod 0400 "$EXPORT"/*.keytab "$EXPORT/http.token" "$EXPORT/proxy-key.pem"
chmod 0444 "$EXPORT/proxy-cert.pem" "$EXPORT/ca.pem"
touch "$EXPORT/ready"
wait $pid
trap - EXIT
