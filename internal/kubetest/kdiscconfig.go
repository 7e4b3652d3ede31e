package kubetest

import (
	"fmt"
	"strings"
)

// KdiscCluster is the YAML body of one discovery.kubernetes cluster (the
// map in single mode, a list item in multi mode) that reaches this
// apiserver as the least-privilege "discovery" identity, verifying TLS
// against CAFile. extra holds more keys at the same level ("" for none).
func (a *APIServer) KdiscCluster(extra string) string {
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
