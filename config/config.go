// Package config reads kdisc's configuration: the discovery.kubernetes
// section of an APISIX-style config.yaml. Every other key of the file is
// ignored, so an existing APISIX config works unchanged.
//
// discovery.kubernetes is either a map (single-cluster mode: one cluster,
// in-pod defaults for everything, so `kubernetes: {}` is valid) or a list
// (multi-cluster mode: each item has an id and must name its apiserver and
// credentials). Parse validates everything it can without touching the
// network or the token file, expands ${NAME} environment references, fills
// the defaults, and returns clusters that are ready to use:
//
//	cfg, err := config.Load("conf/config.yaml")
//	for _, c := range cfg.Clusters {
//		c.BaseURL()   // "https://10.96.0.1:443"
//		c.TableName() // "kubernetes" or "kubernetes-<id>"
//		// c.Token or c.TokenFile, c.Namespaces, c.Labels (see package selector)
//	}
//
// Details a user may trip on:
//
//   - ${NAME} (NAME exactly [A-Za-z_][A-Za-z0-9_]*) is replaced in host,
//     port, token, token_file, ca_file, cert_file and key_file, also inside
//     text ("api.${ZONE}"). An unset variable is an error. APISIX's
//     ${{NAME}} and ${{NAME:=default}} are accepted too.
//   - A key with a null value (`host:` and nothing after it) counts as
//     absent, so its default applies.
//   - shared_size is bytes with an optional k, m or g suffix, binary and
//     case-insensitive (1m = 1<<20), from 16k to 1g; "1mb" is refused, as
//     nginx refuses it.
//   - A literal token is trimmed of surrounding whitespace (a `token: |`
//     block ends with a newline).
//   - An IPv6 address with a zone (fe80::1%eth0) is refused as a host, in
//     service.host and in a kubeconfig server: no certificate can name it.
//   - client.ssl_verify, where some APISIX versions put it, means the same
//     as service.ssl_verify; both written and different is an error naming
//     both keys.
//
// Errors are *Error values whose text starts with the key path and states
// the rule, for example
//
//	discovery.kubernetes[1].id: must match ^[a-z0-9]{1,64}$
//	discovery.kubernetes.service.host: environment variable KUBERNETES_SERVICE_HOST is not set
//
// Parse stops at the first error; keys are checked in a fixed order (the
// order of the documented configuration), so the same file always gives the
// same message.
//
// Effective returns what the dump's "config" holds: the configuration with
// defaults filled, host and port as written, and tokens and an exec
// plugin's args and env values redacted. EffectiveLocal is what `kdisc
// check` prints: the same with exec args shown.
package config

import (
	"fmt"
	"net"
	"os"
	"strconv"

	"github.com/kdisc/kdisc/selector"
)

// Defaults of single-cluster mode (multi-cluster mode has none for service
// and client: each cluster must say where its apiserver is).
const (
	DefaultSchema     = "https"
	DefaultHost       = "${KUBERNETES_SERVICE_HOST}"
	DefaultPort       = "${KUBERNETES_SERVICE_PORT}"
	DefaultTokenFile  = "/var/run/secrets/kubernetes.io/serviceaccount/token"
	DefaultWeight     = 50
	DefaultSharedSize = "1m"

	// content_type: protobuf asks the apiserver for
	// application/vnd.kubernetes.protobuf and accepts JSON; json asks for
	// JSON only.
	ContentTypeProtobuf = "protobuf"
	ContentTypeJSON     = "json"
)

// Config is the parsed discovery.kubernetes section.
type Config struct {
	Multi    bool      // discovery.kubernetes was a list
	Clusters []Cluster // exactly one (with ID "") in single mode
}

// Cluster is one apiserver to list-watch. The first group of fields holds
// the configuration as written with defaults filled; the second group is
// resolved (environment expanded, parsed) and is what the code should use.
type Cluster struct {
	ID                  string // "" in single mode
	Service             Service
	Client              Client
	DefaultWeight       int
	NamespaceSelector   NamespaceSelector
	LabelSelector       string
	SharedSize          string // as written, e.g. "1m"
	WatchEndpointSlices bool
	ContentType         string // content_type: ContentTypeProtobuf (default) or ContentTypeJSON
	TerminatingFallback bool   // terminating_fallback, default true (EndpointSlices only)
	Zone                string // zone as written, "" when absent (EndpointSlices only)
	Node                string // node as written, "" when absent (EndpointSlices only; hints.forNodes)
	NodeDetail          bool   // node_detail, default false

	// Resolved, ready to use.
	Host            string // IPv4, IPv6 (no brackets, no zone) or DNS name
	Port            int
	Token           string // literal token, surrounding whitespace trimmed; "" when TokenFile is used
	TokenFile       string
	CAFile          string // "" = not configured
	CertFile        string // client certificate for mTLS; "" = none
	KeyFile         string
	SSLVerify       bool // false only when service.ssl_verify or client.ssl_verify is false
	SharedSizeBytes int64
	Namespaces      *selector.Namespace // never nil after Parse
	Labels          selector.Labels
	ZoneName        string      // zone, environment expanded
	NodeName        string      // node, environment expanded
	Kubeconfig      *Kubeconfig // non-nil when the connection comes from a kubeconfig (see kubeconfig.go)

	path       string // key path of this cluster, for messages
	portIsInt  bool   // service.port was a YAML integer (Effective prints a number)
	hasNSField bool   // namespace_selector was written
	answers    answers
}

// Service is discovery.kubernetes.service as written (defaults filled).
type Service struct {
	Schema    string
	Host      string
	Port      string // as written: "6443" or "${KUBERNETES_SERVICE_PORT}"
	CAFile    string // ca_file
	SSLVerify *bool  // ssl_verify; nil when absent (verification on)
}

// Client is discovery.kubernetes.client as written (defaults filled).
type Client struct {
	Token     string
	TokenFile string // token_file
	CertFile  string // cert_file
	KeyFile   string // key_file
	SSLVerify *bool  // ssl_verify, as some APISIX versions spell service.ssl_verify; nil when absent
}

// NamespaceSelector is discovery.kubernetes.namespace_selector as written;
// at most one field is set.
type NamespaceSelector struct {
	Equal    string
	NotEqual string
	Match    []string
	NotMatch []string
}

// Error is a configuration error: the key path (e.g.
// "discovery.kubernetes[1].id") and the rule it breaks.
type Error struct {
	Path string
	Msg  string
}

func (e *Error) Error() string { return e.Path + ": " + e.Msg }

func errorf(path, format string, args ...any) error {
	return &Error{Path: path, Msg: fmt.Sprintf(format, args...)}
}

// Load reads and parses the configuration file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(data)
}

// TableName is the name of the cluster's table (shared-memory file):
// "kubernetes" in single mode, "kubernetes-<id>" in multi mode, as APISIX
// names its shared dicts.
func (c *Cluster) TableName() string {
	if c.ID == "" {
		return "kubernetes"
	}
	return "kubernetes-" + c.ID
}

// KeyPath is the cluster's key path in the file: "discovery.kubernetes" in
// single mode, "discovery.kubernetes[i]" in multi mode. Use it to prefix
// messages about this cluster.
func (c *Cluster) KeyPath() string {
	if c.path == "" {
		return "discovery.kubernetes"
	}
	return c.path
}

// BaseURL is the apiserver's URL without a trailing slash, e.g.
// "https://10.96.0.1:443" or "https://[fd00::1]:6443" (with a kubeconfig
// server's path prefix: "https://gw.example:443/k8s/clusters/c-1").
func (c *Cluster) BaseURL() string {
	u := c.Service.Schema + "://" + net.JoinHostPort(c.Host, strconv.Itoa(c.Port))
	if c.Kubeconfig != nil {
		u += c.Kubeconfig.PathPrefix
	}
	return u
}

// TableNames lists every cluster's TableName, in configuration order.
func (c *Config) TableNames() []string {
	names := make([]string, len(c.Clusters))
	for i := range c.Clusters {
		names[i] = c.Clusters[i].TableName()
	}
	return names
}

// Cluster returns the cluster with the given id ("" in single mode).
func (c *Config) Cluster(id string) (*Cluster, bool) {
	for i := range c.Clusters {
		if c.Clusters[i].ID == id {
			return &c.Clusters[i], true
		}
	}
	return nil, false
}
