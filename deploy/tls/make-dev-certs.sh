#!/usr/bin/env bash
# Makes a throwaway CA, a server certificate for localhost/127.0.0.1 and one
# client certificate per name given (the name is the certificate's CN: the
# client's identity in deploy/config/access.yaml). For development and tests
# only: real deployments use the force's PKI.
#
#   deploy/tls/make-dev-certs.sh DIR [CLIENT ...]
#   -> DIR/ca.pem, DIR/server.pem, DIR/server.key, DIR/CLIENT.pem, DIR/CLIENT.key
set -euo pipefail
dir=${1:?usage: make-dev-certs.sh DIR [CLIENT ...]}
shift
mkdir -p "$dir"
cd "$dir"
quiet() { "$@" >/dev/null 2>&1 || { echo "make-dev-certs: $* failed" >&2; "$@"; exit 1; }; }
quiet openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 30 -subj "/CN=vigil-dev-ca"
issue() {  # NAME CN EXTENSIONS
  quiet openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "/CN=$2"
  printf '%s\n' "$3" > "$1.ext"
  quiet openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -out "$1.pem" -days 30 \
    -extfile "$1.ext"
  rm -f "$1.csr" "$1.ext"
}
issue server localhost "subjectAltName=DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth"
for client in "$@"; do
  issue "$client" "$client" "extendedKeyUsage=clientAuth"
done
echo "make-dev-certs: CA, server and ${#} client certificate(s) in $dir" >&2
