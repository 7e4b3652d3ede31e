#!/bin/sh
# A tiny client.authentication.k8s.io exec credential plugin for tests.
# It counts its runs in $KDISC_EXEC_COUNT (a file) and prints an
# ExecCredential of apiVersion $KDISC_EXEC_API with:
#   KDISC_EXEC_TOKENS  space-separated tokens, the Nth run prints the Nth
#                      (the last one once they run out); default exec-token-N
#   KDISC_EXEC_EXPIRY  expirationTimestamp (RFC 3339), absent when unset;
#                      "+S" means S seconds from now (GNU date)
#   KDISC_EXEC_CERT_JSON, KDISC_EXEC_KEY_JSON  JSON strings: print a client
#                      certificate instead of a token
#   KDISC_EXEC_INFO_OUT  a file to copy $KUBERNETES_EXEC_INFO into
#   KDISC_EXEC_FAIL    exit 1 with this text on stderr
set -e
n=$(( $(cat "$KDISC_EXEC_COUNT" 2>/dev/null || echo 0) + 1 ))
echo "$n" > "$KDISC_EXEC_COUNT"
if [ -n "$KDISC_EXEC_INFO_OUT" ]; then
	printf '%s' "$KUBERNETES_EXEC_INFO" > "$KDISC_EXEC_INFO_OUT"
	if [ -t 0 ]; then echo "stdin is a terminal" >> "$KDISC_EXEC_INFO_OUT"; fi
fi
if [ -n "$KDISC_EXEC_FAIL" ]; then
	echo "$KDISC_EXEC_FAIL" >&2
	exit 1
fi
token="exec-token-$n"
if [ -n "$KDISC_EXEC_TOKENS" ]; then
	i=0
	for t in $KDISC_EXEC_TOKENS; do
		i=$((i + 1))
		token=$t
		[ "$i" -ge "$n" ] && break
	done
fi
expiry=""
case "$KDISC_EXEC_EXPIRY" in
	"") ;;
	+*) expiry=",\"expirationTimestamp\":\"$(date -u -d "$KDISC_EXEC_EXPIRY seconds" +%Y-%m-%dT%H:%M:%SZ)\"" ;;
	*) expiry=",\"expirationTimestamp\":\"$KDISC_EXEC_EXPIRY\"" ;;
esac
if [ -n "$KDISC_EXEC_CERT_JSON" ]; then
	printf '{"apiVersion":"%s","kind":"ExecCredential","status":{"clientCertificateData":%s,"clientKeyData":%s%s}}\n' \
		"$KDISC_EXEC_API" "$KDISC_EXEC_CERT_JSON" "$KDISC_EXEC_KEY_JSON" "$expiry"
else
	printf '{"apiVersion":"%s","kind":"ExecCredential","status":{"token":"%s"%s}}\n' "$KDISC_EXEC_API" "$token" "$expiry"
fi
