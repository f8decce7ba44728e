#!/usr/bin/env bash
# tests/common/make_test_certs.sh DIR: throwaway PKI for the TLS tests, made with the openssl CLI.
#
#   ca.pem / ca.key            CA "hbsa-test-ca"
#   server.pem / server.key    server certificate (CN localhost; SAN DNS:localhost, IP:127.0.0.1) by ca
#   client.pem / client.key    client certificate (CN hbsa-test-client) by ca
#   other-ca.pem / .key        a second, unrelated CA
#   other-server.pem / .key    server certificate by other-ca (same names): certificate rotation
#   other-client.pem / .key    client certificate by other-ca: refused by a server trusting ca
# EC P-256 keys (fast to make), valid 2 days. Nothing here is secret or reused.
set -euo pipefail
dir=${1:?usage: make_test_certs.sh DIR}
mkdir -p "$dir"
cd "$dir"
key() { openssl ecparam -name prime256v1 -genkey -noout -out "$1.key" 2>/dev/null; }
ca() {  # ca NAME CN
  key "$1"
  openssl req -x509 -new -key "$1.key" -out "$1.pem" -days 2 -subj "/CN=$2" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}
leaf() {  # leaf NAME CN CA EXTENSIONS
  key "$1"
  openssl req -new -key "$1.key" -out "$1.csr" -subj "/CN=$2" 2>/dev/null
  printf '%s\n' "$4" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -CAcreateserial -out "$1.pem" \
    -days 2 -extfile "$1.ext" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
server_ext=$'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth'
client_ext=$'extendedKeyUsage=clientAuth'
ca ca hbsa-test-ca
ca other-ca hbsa-other-ca
leaf server localhost ca "$server_ext"
leaf client hbsa-test-client ca "$client_ext"
leaf other-server localhost other-ca "$server_ext"
leaf other-client hbsa-other-client other-ca "$client_ext"
rm -f ./*.srl
