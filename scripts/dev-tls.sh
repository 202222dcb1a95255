#!/usr/bin/env bash
# dev-tls.sh DIR — a throwaway development CA and a server certificate for localhost/127.0.0.1:
#   DIR/ca.pem, DIR/ca.key (the CA; give ca.pem to clients: `autoid request --cacert`, curl --cacert)
#   DIR/server.pem, DIR/server.key (Envoy's HTTPS listener), ECDSA P-256, SAN DNS:localhost, IP:127.0.0.1
# Existing files are kept. Never use these for anything but local development.
set -euo pipefail
dir=${1:?usage: dev-tls.sh DIR}
mkdir -p "$dir"
cd "$dir"
umask 077
if [ ! -f ca.pem ] || [ ! -f ca.key ]; then
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
		-subj "/CN=autoid development CA" -keyout ca.key -out ca.pem \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
	rm -f server.pem server.key
fi
if [ ! -f server.pem ] || [ ! -f server.key ]; then
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
		-keyout server.key -out server.csr 2>/dev/null
	printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "extendedKeyUsage=serverAuth" \
		"basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" >server.ext
	openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 825 \
		-extfile server.ext -out server.pem 2>/dev/null
	rm -f server.csr server.ext ca.srl
fi
chmod 644 ca.pem server.pem
