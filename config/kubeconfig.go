package config

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/goccy/go-yaml"

	"github.com/kdisc/kdisc/apiserver"
)

// A cluster may take its connection from a kubeconfig, as kubectl reads
// it, instead of service and client:
//
//	kubeconfig: ${HOME}/.kube/config   # path; ${ENV} allowed
//	context: prod                      # optional; default current-context
//
// From the context's cluster: server (scheme, host, port and any path
// prefix), certificate-authority(-data), insecure-skip-tls-verify,
// tls-server-name. From its user: token, tokenFile,
// client-certificate(-data), client-key(-data), exec (run by the
// apiserver client, never here). Relative paths are relative to the
// kubeconfig's folder. What else affects the connection (proxy-url,
// auth-provider, username/password, impersonation) is refused; the
// context's namespace is ignored. $KUBECONFIG and ~/.kube/config are
// never read unless named.

// Kubeconfig is where a cluster's connection came from and what of it the
// Cluster's plain fields cannot hold. With it, the resolved fields of
// Cluster (Service.Schema, Host, Port, Token, TokenFile, CAFile, CertFile,
// KeyFile, SSLVerify) hold what the kubeconfig says.
type Kubeconfig struct {
	Path    string // the kubeconfig key as written, e.g. "${HOME}/.kube/config"
	Context string // the context key as written; "" = the file's current-context

	File        string // Path expanded, absolute
	ContextName string // the context used
	ClusterName string
	UserName    string // "" when the context names no user (anonymous)

	Server        string // cluster.server as written
	PathPrefix    string // the server URL's path without a trailing slash: "" or "/k8s/clusters/c-1"
	TLSServerName string
	CAData        []byte // decoded certificate-authority-data (PEM)
	CertData      []byte // decoded client-certificate-data
	KeyData       []byte // decoded client-key-data
	Exec          *apiserver.ExecConfig

	eff effSource // what Effective shows (secrets redacted)
}

// kcFile is the part of a kubeconfig (clientcmd v1 Config) kdisc reads,
// decoded by goccy/go-yaml: unknown keys are ignored, null is the zero
// value, and a value of the wrong shape is an error naming its position
// and field.
type kcFile struct {
	CurrentContext string           `yaml:"current-context"`
	Clusters       []kcNamedCluster `yaml:"clusters"`
	Contexts       []kcNamedContext `yaml:"contexts"`
	Users          []kcNamedUser    `yaml:"users"`
}

type kcNamedCluster struct {
	Name    string     `yaml:"name"`
	Cluster *kcCluster `yaml:"cluster"`
}

type kcNamedContext struct {
	Name    string     `yaml:"name"`
	Context *kcContext `yaml:"context"`
}

type kcNamedUser struct {
	Name string  `yaml:"name"`
	User *kcUser `yaml:"user"`
}

type kcContext struct {
	Cluster   string `yaml:"cluster"`
	User      string `yaml:"user"`
	Namespace string `yaml:"namespace"`
}

type kcCluster struct {
	Server                   string        `yaml:"server"`
	TLSServerName            string        `yaml:"tls-server-name"`
	InsecureSkipTLSVerify    bool          `yaml:"insecure-skip-tls-verify"`
	CertificateAuthority     string        `yaml:"certificate-authority"`
	CertificateAuthorityData string        `yaml:"certificate-authority-data"`
	ProxyURL                 string        `yaml:"proxy-url"`
	Extensions               []kcExtension `yaml:"extensions"`
}

type kcExtension struct {
	Name      string `yaml:"name"`
	Extension any    `yaml:"extension"`
}

type kcUser struct {
	Token                 string  `yaml:"token"`
	TokenFile             string  `yaml:"tokenFile"`
	ClientCertificate     string  `yaml:"client-certificate"`
	ClientCertificateData string  `yaml:"client-certificate-data"`
	ClientKey             string  `yaml:"client-key"`
	ClientKeyData         string  `yaml:"client-key-data"`
	Exec                  *kcExec `yaml:"exec"`

	// Refused: they change how kdisc connects, and kdisc does not do them.
	AuthProvider any            `yaml:"auth-provider"`
	Username     string         `yaml:"username"`
	Password     string         `yaml:"password"`
	As           string         `yaml:"as"`
	AsUID        string         `yaml:"as-uid"`
	AsGroups     []string       `yaml:"as-groups"`
	AsUserExtra  map[string]any `yaml:"as-user-extra"`
}

type kcExec struct {
	APIVersion         string   `yaml:"apiVersion"`
	Command            string   `yaml:"command"`
	Args               []string `yaml:"args"`
	Env                []kcEnv  `yaml:"env"`
	InstallHint        string   `yaml:"installHint"`
	ProvideClusterInfo bool     `yaml:"provideClusterInfo"`
	InteractiveMode    string   `yaml:"interactiveMode"`
}

type kcEnv struct {
	Name  string `yaml:"name"`
	Value string `yaml:"value"`
}

// parseConnection reads service and client, or kubeconfig and context.
func (c *Cluster) parseConnection(path string, m map[string]any, multi bool) error {
	if _, ok := m["kubeconfig"]; !ok {
		if _, ok := m["context"]; ok {
			return errorf(path+".context", "is only allowed with kubeconfig (it names one of the kubeconfig's contexts)")
		}
		if err := c.parseService(path, m, multi); err != nil {
			return err
		}
		return c.parseClient(path, m, multi)
	}
	for _, k := range []string{"service", "client"} {
		if _, ok := m[k]; ok {
			return errorf(path+".kubeconfig", "must not be set together with %s.%s: the kubeconfig says where the apiserver is and how to authenticate", path, k)
		}
	}
	kc, ok := m["kubeconfig"].(string)
	if !ok {
		return errorf(path+".kubeconfig", "must be a string (a kubeconfig file path)")
	}
	ctx := ""
	if v, ok := m["context"]; ok {
		if ctx, ok = v.(string); !ok {
			return errorf(path+".context", "must be a string (a context name of the kubeconfig)")
		}
	}
	return c.loadKubeconfig(path+".kubeconfig", path+".context", kc, ctx)
}

// FromKubeconfig is the configuration of `kdisc ... -kubeconfig FILE
// [-context NAME]`: a single cluster from that context, every other key at
// its default. Errors name the flags.
func FromKubeconfig(file, context string) (*Config, error) {
	m := map[string]any{"kubeconfig": file}
	if context != "" {
		m["context"] = context
	}
	c, err := parseCluster(root, m, false)
	if err != nil {
		if e, ok := err.(*Error); ok {
			switch e.Path {
			case root + ".kubeconfig":
				e.Path = "-kubeconfig"
			case root + ".context":
				e.Path = "-context"
			}
			e.Msg = strings.ReplaceAll(e.Msg, "set "+root+".context", "set -context")
		}
		return nil, err
	}
	return &Config{Clusters: []Cluster{c}}, nil
}

// loadKubeconfig reads the kubeconfig and fills the connection. It never
// runs an exec plugin and does not need token or certificate files to
// exist yet.
func (c *Cluster) loadKubeconfig(kcKey, ctxKey, written, ctxWritten string) error {
	k := &Kubeconfig{Path: written, Context: ctxWritten}
	file, err := expand(kcKey, written)
	if err != nil {
		return err
	}
	if file == "" {
		return errorf(kcKey, "must not be empty")
	}
	if k.File, err = filepath.Abs(file); err != nil {
		return errorf(kcKey, "%v", err)
	}
	data, err := os.ReadFile(k.File)
	if err != nil {
		return errorf(kcKey, "reading the kubeconfig: %v", err)
	}
	fail := func(format string, args ...any) error {
		return errorf(kcKey, "%s: %s", k.File, fmt.Sprintf(format, args...))
	}
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		// Position and reason only: the lines around may hold a secret.
		return fail("invalid YAML: %s", yaml.FormatError(err, false, false))
	}
	if _, ok := doc.(map[string]any); !ok {
		return fail("invalid kubeconfig: must be a map with clusters, contexts and users")
	}
	var f kcFile
	if err := yaml.Unmarshal(data, &f); err != nil {
		return fail("invalid kubeconfig: %s", yaml.FormatError(err, false, false))
	}

	// The context.
	names := func(kind string, n int, name func(int) string) (map[string]int, error) {
		idx := map[string]int{}
		for i := range n {
			if _, dup := idx[name(i)]; dup {
				return nil, fail("%s: duplicate name %q", kind, name(i))
			}
			idx[name(i)] = i
		}
		return idx, nil
	}
	contexts, err := names("contexts", len(f.Contexts), func(i int) string { return f.Contexts[i].Name })
	if err != nil {
		return err
	}
	clusters, err := names("clusters", len(f.Clusters), func(i int) string { return f.Clusters[i].Name })
	if err != nil {
		return err
	}
	users, err := names("users", len(f.Users), func(i int) string { return f.Users[i].Name })
	if err != nil {
		return err
	}
	if ctxWritten != "" {
		if k.ContextName, err = expand(ctxKey, ctxWritten); err != nil {
			return err
		}
		if _, ok := contexts[k.ContextName]; !ok {
			known := make([]string, 0, len(contexts))
			for n := range contexts {
				known = append(known, n)
			}
			slices.Sort(known)
			return errorf(ctxKey, "context %q is not in %s (it has: %s)", k.ContextName, k.File, strings.Join(known, ", "))
		}
	} else if k.ContextName = f.CurrentContext; k.ContextName == "" {
		return errorf(kcKey, "%s has no current-context: set %s", k.File, ctxKey)
	} else if _, ok := contexts[k.ContextName]; !ok {
		return fail("current-context %q is not one of its contexts", k.ContextName)
	}
	kctx := f.Contexts[contexts[k.ContextName]].Context
	if kctx == nil {
		kctx = &kcContext{}
	}
	if kctx.Cluster == "" {
		return fail("context %q: names no cluster", k.ContextName)
	}
	ci, ok := clusters[kctx.Cluster]
	if !ok {
		return fail("context %q: cluster %q is not in the kubeconfig", k.ContextName, kctx.Cluster)
	}
	kcl := f.Clusters[ci].Cluster
	if kcl == nil {
		kcl = &kcCluster{}
	}
	ku := &kcUser{}
	if kctx.User != "" {
		ui, ok := users[kctx.User]
		if !ok {
			return fail("context %q: user %q is not in the kubeconfig", k.ContextName, kctx.User)
		}
		if f.Users[ui].User != nil {
			ku = f.Users[ui].User
		}
	}
	k.ClusterName, k.UserName = kctx.Cluster, kctx.User
	k.eff = effSource{File: k.File, Context: k.ContextName, Cluster: k.ClusterName, User: k.UserName}
	if kctx.Namespace != "" {
		k.eff.Notes = append(k.eff.Notes, fmt.Sprintf("the context's namespace (%s) is ignored: kdisc watches the namespaces of namespace_selector", kctx.Namespace))
	}
	dir := filepath.Dir(k.File)
	clusterFail := func(format string, args ...any) error {
		return fail("cluster %q: %s", k.ClusterName, fmt.Sprintf(format, args...))
	}
	if err := c.kubeconfigCluster(k, kcl, dir, clusterFail); err != nil {
		return err
	}
	userFail := func(format string, args ...any) error {
		return fail("user %q: %s", k.UserName, fmt.Sprintf(format, args...))
	}
	if err := c.kubeconfigUser(k, ku, kcl, dir, userFail); err != nil {
		return err
	}
	c.Kubeconfig = k
	return nil
}

func (c *Cluster) kubeconfigCluster(k *Kubeconfig, kcl *kcCluster, dir string, fail func(string, ...any) error) error {
	if kcl.ProxyURL != "" {
		return fail("proxy-url is not supported by kdisc (it connects to the server directly)")
	}
	if kcl.Server == "" {
		return fail("server is required")
	}
	k.Server = kcl.Server
	u, err := url.Parse(kcl.Server)
	if err != nil {
		if zone, ok := unescapedZone(kcl.Server); ok {
			return fail("server %q: %s", kcl.Server, zoneRule(zone))
		}
		return fail("server: not a URL")
	}
	if u.User != nil {
		return fail("server: must not hold a user name or password")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fail("server %q: the scheme must be http or https", kcl.Server)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return fail("server %q: must not have a query or fragment", kcl.Server)
	}
	c.Service.Schema = u.Scheme
	c.Host = u.Hostname()
	if _, zone, ok := strings.Cut(c.Host, "%"); ok {
		return fail("server %q: %s", kcl.Server, zoneRule(zone))
	}
	if err := checkHost("server", c.Host); err != nil {
		return fail("server %q: %s", kcl.Server, err.(*Error).Msg)
	}
	switch p := u.Port(); {
	case p != "":
		if c.Port, err = parsePort(p); err != nil {
			return fail("server %q: port must be 1..65535", kcl.Server)
		}
	case u.Scheme == "https":
		c.Port = 443
	default:
		c.Port = 80
	}
	k.PathPrefix = strings.TrimRight(u.EscapedPath(), "/")
	k.eff.Server = kcl.Server

	k.TLSServerName, k.eff.TLSServerName = kcl.TLSServerName, kcl.TLSServerName
	if kcl.CertificateAuthority != "" && kcl.CertificateAuthorityData != "" {
		return fail("certificate-authority and certificate-authority-data must not both be set")
	}
	if kcl.InsecureSkipTLSVerify && (kcl.CertificateAuthority != "" || kcl.CertificateAuthorityData != "") {
		return fail("insecure-skip-tls-verify must not be set with a certificate authority (as kubectl refuses it)")
	}
	c.SSLVerify = !kcl.InsecureSkipTLSVerify
	if kcl.InsecureSkipTLSVerify {
		k.eff.Insecure = true
	}
	if kcl.CertificateAuthority != "" {
		c.CAFile = resolvePath(dir, kcl.CertificateAuthority)
		k.eff.CA = c.CAFile
	}
	if kcl.CertificateAuthorityData != "" {
		if k.CAData, err = decodeData(kcl.CertificateAuthorityData); err != nil {
			return fail("certificate-authority-data: %v", err)
		}
		k.eff.CAData = Redacted
	}
	return nil
}

func (c *Cluster) kubeconfigUser(k *Kubeconfig, ku *kcUser, kcl *kcCluster, dir string, fail func(string, ...any) error) error {
	switch {
	case ku.AuthProvider != nil:
		return fail("auth-provider is not supported by kdisc (use an exec plugin, e.g. kubelogin, or a token)")
	case ku.Username != "" || ku.Password != "":
		return fail("username/password (basic auth) is not supported by kdisc")
	case ku.As != "" || ku.AsUID != "" || len(ku.AsGroups) > 0 || len(ku.AsUserExtra) > 0:
		return fail("as (impersonation) is not supported by kdisc")
	}
	// Bearer token: a token file wins over a literal token, as in client-go
	// (which starts with the token and re-reads the file from then on).
	switch {
	case ku.TokenFile != "":
		c.TokenFile = resolvePath(dir, ku.TokenFile)
		k.eff.TokenFile = c.TokenFile
	case ku.Token != "":
		if c.Token = strings.TrimSpace(ku.Token); c.Token == "" {
			return fail("token must not be empty")
		}
	}
	if ku.Token != "" {
		k.eff.Token = Redacted
	}

	// Client certificate.
	if ku.ClientCertificate != "" && ku.ClientCertificateData != "" {
		return fail("client-certificate and client-certificate-data must not both be set")
	}
	if ku.ClientKey != "" && ku.ClientKeyData != "" {
		return fail("client-key and client-key-data must not both be set")
	}
	hasCert := ku.ClientCertificate != "" || ku.ClientCertificateData != ""
	hasKey := ku.ClientKey != "" || ku.ClientKeyData != ""
	if hasCert != hasKey {
		return fail("client-certificate(-data) and client-key(-data) must be set together")
	}
	if hasCert && (ku.ClientCertificate != "") != (ku.ClientKey != "") {
		return fail("client-certificate and client-key must both be files or both be data")
	}
	var err error
	if ku.ClientCertificate != "" {
		c.CertFile, c.KeyFile = resolvePath(dir, ku.ClientCertificate), resolvePath(dir, ku.ClientKey)
		k.eff.Cert, k.eff.Key = c.CertFile, c.KeyFile
	}
	if ku.ClientCertificateData != "" {
		if k.CertData, err = decodeData(ku.ClientCertificateData); err != nil {
			return fail("client-certificate-data: %v", err)
		}
		if k.KeyData, err = decodeData(ku.ClientKeyData); err != nil {
			return fail("client-key-data: %v", err)
		}
		k.eff.CertData, k.eff.KeyData = Redacted, Redacted
	}

	// Exec: only when nothing else authenticates, as in kubectl.
	x := ku.Exec
	if x == nil {
		return nil
	}
	if c.Token != "" || c.TokenFile != "" || hasCert {
		k.eff.Notes = append(k.eff.Notes, "exec is not used: the user has a token or a client certificate, which kubectl uses instead")
		return nil
	}
	e := &apiserver.ExecConfig{
		APIVersion:         x.APIVersion,
		Command:            x.Command,
		Args:               x.Args,
		InteractiveMode:    x.InteractiveMode,
		InstallHint:        x.InstallHint,
		ProvideClusterInfo: x.ProvideClusterInfo,
	}
	// A command with a path separator is relative to the kubeconfig; a
	// bare name is looked up in $PATH (kubectl does the same).
	if strings.ContainsRune(e.Command, filepath.Separator) {
		e.Command = resolvePath(dir, e.Command)
	}
	ee := &effExec{APIVersion: x.APIVersion, Command: x.Command, Args: x.Args, InteractiveMode: x.InteractiveMode, ProvideClusterInfo: x.ProvideClusterInfo}
	for _, v := range x.Env {
		e.Env = append(e.Env, apiserver.ExecEnv{Name: v.Name, Value: v.Value})
		ee.Env = append(ee.Env, effEnv{Name: v.Name, Value: Redacted})
	}
	if err := e.Validate(); err != nil {
		return fail("%v", err)
	}
	if e.ProvideClusterInfo {
		e.Cluster = apiserver.ExecCluster{
			Server:                   kcl.Server,
			TLSServerName:            kcl.TLSServerName,
			InsecureSkipTLSVerify:    kcl.InsecureSkipTLSVerify,
			CertificateAuthorityData: k.CAData,
		}
		if c.CAFile != "" {
			// Best effort: the file may appear later; the plugin then
			// gets no CA, as it would from a kubeconfig without one.
			e.Cluster.CertificateAuthorityData, _ = os.ReadFile(c.CAFile)
		}
		for _, ext := range kcl.Extensions {
			if ext.Name == "client.authentication.k8s.io/exec" {
				e.Cluster.Config = ext.Extension
			}
		}
	}
	k.Exec, k.eff.Exec = e, ee
	return nil
}

// unescapedZone finds the zone of "https://[fe80::1%eth0]:6443", which
// url.Parse refuses (a zone must be written %25eth0 in a URL).
func unescapedZone(server string) (string, bool) {
	_, rest, ok := strings.Cut(server, "[")
	if !ok {
		return "", false
	}
	ip, _, ok := strings.Cut(rest, "]")
	if !ok {
		return "", false
	}
	_, zone, ok := strings.Cut(ip, "%")
	return zone, ok
}

// resolvePath makes a kubeconfig path absolute against the kubeconfig's
// folder.
func resolvePath(dir, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// decodeData decodes a kubeconfig *-data field (standard base64, as
// kubectl writes it; surrounding whitespace and line breaks allowed).
func decodeData(s string) ([]byte, error) {
	s = strings.Join(strings.Fields(s), "")
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("not base64")
	}
	return b, nil
}

// effSource is the "source" of an effective kubeconfig cluster: where
// the connection came from and what the kubeconfig said, with the
// kubeconfig's own key names; secrets are "<redacted>".
type effSource struct {
	File          string   `json:"file"`
	Context       string   `json:"context"`
	Cluster       string   `json:"cluster"`
	User          string   `json:"user,omitempty"`
	Server        string   `json:"server"`
	CA            string   `json:"certificate-authority,omitempty"`
	CAData        string   `json:"certificate-authority-data,omitempty"`
	Insecure      bool     `json:"insecure-skip-tls-verify,omitempty"`
	TLSServerName string   `json:"tls-server-name,omitempty"`
	Token         string   `json:"token,omitempty"`
	TokenFile     string   `json:"tokenFile,omitempty"`
	Cert          string   `json:"client-certificate,omitempty"`
	Key           string   `json:"client-key,omitempty"`
	CertData      string   `json:"client-certificate-data,omitempty"`
	KeyData       string   `json:"client-key-data,omitempty"`
	Exec          *effExec `json:"exec,omitempty"`
	Notes         []string `json:"notes,omitempty"`
}

type effExec struct {
	APIVersion         string   `json:"apiVersion"`
	Command            string   `json:"command"` // as written
	Args               []string `json:"args,omitempty"`
	Env                []effEnv `json:"env,omitempty"`
	InteractiveMode    string   `json:"interactiveMode,omitempty"`
	ProvideClusterInfo bool     `json:"provideClusterInfo,omitempty"`
}

type effEnv struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}
