package config

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// Redacted replaces a literal token wherever the configuration is shown.
const Redacted = "<redacted>"

// The effective-configuration shapes: JSON names are the YAML keys, and
// optional keys without a default are omitted when absent.
type effCluster struct {
	ID                  string     `json:"id,omitempty"`
	Kubeconfig          string     `json:"kubeconfig,omitempty"` // as written
	Context             string     `json:"context,omitempty"`    // as written
	Source              *effSource `json:"source,omitempty"`     // what the kubeconfig said (kubeconfig.go)
	Service             *effSvc    `json:"service,omitempty"`    // absent with a kubeconfig
	Client              *effClient `json:"client,omitempty"`     // absent with a kubeconfig
	DefaultWeight       int        `json:"default_weight"`
	NamespaceSelector   *effNS     `json:"namespace_selector,omitempty"`
	LabelSelector       string     `json:"label_selector,omitempty"`
	SharedSize          string     `json:"shared_size"`
	WatchEndpointSlices bool       `json:"watch_endpoint_slices"`
	ContentType         string     `json:"content_type"`
	effAnswers
}

type effSvc struct {
	Schema    string `json:"schema"`
	Host      string `json:"host"`
	Port      any    `json:"port"` // number or string, as written
	CAFile    string `json:"ca_file,omitempty"`
	SSLVerify *bool  `json:"ssl_verify,omitempty"`
}

type effClient struct {
	Token     string `json:"token,omitempty"`
	TokenFile string `json:"token_file,omitempty"`
	CertFile  string `json:"cert_file,omitempty"`
	KeyFile   string `json:"key_file,omitempty"`
	SSLVerify *bool  `json:"ssl_verify,omitempty"`
}

type effNS struct {
	Equal    string   `json:"equal,omitempty"`
	NotEqual string   `json:"not_equal,omitempty"`
	Match    []string `json:"match,omitempty"`
	NotMatch []string `json:"not_match,omitempty"`
}

// Effective returns the configuration as the dump's "config" holds it
// (`kdisc check` prints EffectiveLocal), ready for encoding/json: the single cluster's
// object in single mode, an array of them in multi mode. Defaults are
// filled; host, port and file paths are shown as written (not expanded; a
// port written as a YAML integer is a JSON number, as a string a JSON
// string); a literal token is shown as "<redacted>". client.ssl_verify is
// shown where it was written, and its value under service.ssl_verify too
// (the key APISIX documents), so service.ssl_verify is the result.
//
// Encode it with HTML escaping off (json.Encoder.SetEscapeHTML(false), as
// EffectiveJSON does): json.Marshal writes "<redacted>" as
// "\u003credacted\u003e", the same JSON string but not the same text.
//
// Effective is what travels: an exec plugin's args and env values are
// "<redacted>" too (they often carry profiles, tokens, account ids); the
// env names stay. EffectiveLocal is for the local terminal.
func (c *Config) Effective() any { return c.effective(false) }

// EffectiveLocal is what `kdisc check` prints on the terminal of whoever
// reads the config file anyway: Effective with exec args shown (env values
// stay redacted).
func (c *Config) EffectiveLocal() any { return c.effective(true) }

func (c *Config) effective(local bool) any {
	out := make([]effCluster, len(c.Clusters))
	for i := range c.Clusters {
		out[i] = c.Clusters[i].effective(local)
	}
	if !c.Multi && len(out) == 1 {
		return out[0]
	}
	return out
}

func (c *Cluster) effective(local bool) effCluster {
	e := effCluster{
		ID: c.ID,
		Service: &effSvc{
			Schema:    c.Service.Schema,
			Host:      c.Service.Host,
			Port:      c.Service.Port,
			CAFile:    c.Service.CAFile,
			SSLVerify: c.Service.SSLVerify,
		},
		Client: &effClient{
			TokenFile: c.Client.TokenFile,
			CertFile:  c.Client.CertFile,
			KeyFile:   c.Client.KeyFile,
			SSLVerify: c.Client.SSLVerify,
		},
		DefaultWeight:       c.DefaultWeight,
		LabelSelector:       c.LabelSelector,
		SharedSize:          c.SharedSize,
		WatchEndpointSlices: c.WatchEndpointSlices,
		ContentType:         c.ContentType,
		effAnswers:          c.effectiveAnswers(),
	}
	// service.ssl_verify shows the result when either key was written
	// (they agree, Parse made sure), so a reader of the documented key
	// never misses a client.ssl_verify: false.
	if e.Service.SSLVerify == nil && c.Client.SSLVerify != nil {
		e.Service.SSLVerify = c.Client.SSLVerify
	}
	if c.portIsInt {
		if n, err := strconv.Atoi(c.Service.Port); err == nil {
			e.Service.Port = n
		}
	}
	if c.Client.Token != "" || c.Token != "" {
		e.Client.Token = Redacted
	}
	if k := c.Kubeconfig; k != nil {
		e.Service, e.Client = nil, nil
		e.Kubeconfig, e.Context = k.Path, k.Context
		src := k.eff
		if x := src.Exec; x != nil && !local && len(x.Args) > 0 {
			redacted := *x
			redacted.Args = make([]string, len(x.Args))
			for i := range redacted.Args {
				redacted.Args[i] = Redacted
			}
			src.Exec = &redacted
		}
		e.Source = &src
	}
	if ns := c.NamespaceSelector; c.hasNSField || ns.Equal != "" || ns.NotEqual != "" || ns.Match != nil || ns.NotMatch != nil {
		e.NamespaceSelector = &effNS{Equal: ns.Equal, NotEqual: ns.NotEqual, Match: ns.Match, NotMatch: ns.NotMatch}
	}
	return e
}

// EffectiveJSON is Effective encoded on one line without HTML escaping
// (`kdisc check` prints EffectiveLocal the same way, indented).
func (c *Config) EffectiveJSON() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(c.Effective()); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
