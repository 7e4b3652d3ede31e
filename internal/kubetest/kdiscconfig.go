package kubetest

import (
	"fmt"
	"os"
	"strings"
)

// EnvContentType (KDISC_E2E_CONTENT_TYPE=json or protobuf), when set,
// adds content_type to every KdiscCluster that does not say it: the
// end-to-end scenarios run in that wire format. Unset, they run in kdisc's
// default (protobuf).
const EnvContentType = "KDISC_E2E_CONTENT_TYPE"

// KdiscCluster is the YAML body of one discovery.kubernetes cluster (the
// map in single mode, a list item in multi mode) that reaches this
// apiserver as the least-privilege "discovery" identity, verifying TLS
// against CAFile. extra holds more keys at the same level ("" for none).
func (a *APIServer) KdiscCluster(extra string) string {
	if ct := os.Getenv(EnvContentType); ct != "" && !strings.Contains(extra, "content_type:") {
		extra = "content_type: " + ct + "\n" + extra
	}
	return fmt.Sprintf(`service:
  schema: https
  host: %s
  port: %d
  ca_file: %s
client:
  token_file: %s
%s`, a.Host, a.Port, a.CAFile, a.DiscoveryTokenFile, extra)
}

// KdiscConfig is a whole single-mode config.yaml for KdiscCluster(extra).
func (a *APIServer) KdiscConfig(extra string) string {
	return "discovery:\n  kubernetes:\n" + Indent(a.KdiscCluster(extra), "    ")
}

// Indent prefixes every line of s with prefix.
func Indent(s, prefix string) string {
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString(prefix + line + "\n")
	}
	return b.String()
}
