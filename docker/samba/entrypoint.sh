#!/bin/sh
# Samba AD DC for docker-compose.yml. First start: provision AD.EXAMPLE.TEST (everything,
# smb.conf included, in $DC on the "samba" volume), create the lab accounts, export their
# keytabs to $EXPORT, add the reverse zone. Every start: run samba in the foreground and
# copy its TLS CA to $EXPORT, which the proxy mounts read-only (its keytab, the HTTP
# keytab, the CA). The accounts are lab/samba_topology.py's (docker/samba/accounts.json).
set -eu
: "${DC_IP:?set DC_IP to this container's address}"
ADMIN_PASSWORD=${ADMIN_PASSWORD:-Lab-Admin-Pass1!}
PROXY_UID=${PROXY_UID:-10053}
REVERSE_ZONE=${REVERSE_ZONE:-1.0.10.in-addr.arpa}
DC=${DC:-/var/lib/samba/dc}
EXPORT=${EXPORT:-/export}
LAB_FILES=${LAB_FILES:-/opt/lab}

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
chown "$PROXY_UID" "$EXPORT"/*.keytab
chmod 0400 "$EXPORT"/*.keytab
touch "$EXPORT/ready"
wait $pid
trap - EXIT
