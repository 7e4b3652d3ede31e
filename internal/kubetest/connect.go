package kubetest

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
)

// Connect returns a handle on an apiserver that another process started
// (kube-up, the quick start), for the admin REST helpers (Do, Apply,
// ApplyEndpoints, ...). Process control (StopAPIServer, StartAPIServer)
// is not available on it.
func Connect(apiURL, caFile, adminTokenFile string) (*APIServer, error) {
	u, err := url.Parse(apiURL)
	if err != nil {
		return nil, err
	}
	host, portText, err := net.SplitHostPort(u.Host)
	if err != nil {
		return nil, err
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return nil, err
	}
	tok, err := os.ReadFile(adminTokenFile)
	if err != nil {
		return nil, fmt.Errorf("kubetest: %w", err)
	}
	tc, err := tlsConfig(caFile)
	if err != nil {
		return nil, err
	}
	a := &APIServer{URL: apiURL, Host: host, Port: port, tlsConfig: tc,
		client: &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}}
	a.CAFile = caFile
	a.AdminToken, a.AdminTokenFile = strings.TrimSpace(string(tok)), adminTokenFile
	return a, nil
}
