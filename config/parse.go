package config

import (
	"fmt"
	"math"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"

	"github.com/kdisc/kdisc/selector"
)

const root = "discovery.kubernetes"

// Parse parses a YAML document and returns its discovery.kubernetes
// section, validated and resolved. Environment variables are read with
// os.LookupEnv. A key whose value is null (`host:` with nothing after it)
// counts as absent.
func Parse(data []byte) (*Config, error) {
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		// Position and reason only: the source lines around a syntax
		// error may hold a token.
		return nil, fmt.Errorf("config: invalid YAML: %s", yaml.FormatError(err, false, false))
	}
	top, ok := doc.(map[string]any)
	if doc != nil && !ok {
		return nil, errorf("config", "the document must be a map with a discovery.kubernetes key")
	}
	disc, ok := top["discovery"]
	if !ok || disc == nil {
		return nil, errorf(root, "is required: kdisc reads its configuration from discovery.kubernetes")
	}
	discMap, ok := disc.(map[string]any)
	if !ok {
		return nil, errorf("discovery", "must be a map")
	}
	k8s, ok := discMap["kubernetes"]
	if !ok {
		return nil, errorf(root, "is required: kdisc reads its configuration from discovery.kubernetes")
	}
	switch v := k8s.(type) {
	case map[string]any:
		c, err := parseCluster(root, v, false)
		if err != nil {
			return nil, err
		}
		return &Config{Clusters: []Cluster{c}}, nil
	case []any:
		if len(v) == 0 {
			return nil, errorf(root, "must list at least one cluster")
		}
		cfg := &Config{Multi: true}
		seen := map[string]string{} // id -> path of its cluster
		for i, item := range v {
			path := fmt.Sprintf("%s[%d]", root, i)
			m, ok := item.(map[string]any)
			if !ok {
				return nil, errorf(path, "must be a map (a cluster with id, service, client, ...)")
			}
			c, err := parseCluster(path, m, true)
			if err != nil {
				return nil, err
			}
			if other, dup := seen[c.ID]; dup {
				return nil, errorf(path+".id", "must be unique: %q is also the id of %s", c.ID, other)
			}
			seen[c.ID] = path
			cfg.Clusters = append(cfg.Clusters, c)
		}
		return cfg, nil
	case nil:
		return nil, errorf(root, "must be a map (single cluster) or a list (multi cluster), not empty; write `kubernetes: {}` for the in-pod defaults")
	}
	return nil, errorf(root, "must be a map (single cluster) or a list (multi cluster)")
}

var (
	clusterKeys = []string{"service", "client", "kubeconfig", "context", "default_weight", "namespace_selector", "label_selector", "shared_size", "watch_endpoint_slices", "content_type"}
	serviceKeys = []string{"schema", "host", "port", "ca_file", "ssl_verify"}
	clientKeys  = []string{"token", "token_file", "cert_file", "key_file", "ssl_verify"}
	nsKeys      = []string{"equal", "not_equal", "match", "not_match"}
	idPattern   = regexp.MustCompile(`^[a-z0-9]{1,64}$`)
)

// parseCluster validates one cluster map. Keys are checked in the order of
// the documented configuration so the first error is stable.
func parseCluster(path string, m map[string]any, multi bool) (Cluster, error) {
	c := Cluster{path: path, DefaultWeight: DefaultWeight, SharedSize: DefaultSharedSize, SSLVerify: true}
	allowed := clusterKeys
	allowed = append(allowed[:len(allowed):len(allowed)], answerKeys...)
	if multi {
		allowed = append([]string{"id"}, allowed...)
	}
	if err := checkKeys(path, m, allowed); err != nil {
		return c, err
	}
	if multi {
		id, ok := m["id"]
		if !ok || id == nil {
			return c, errorf(path+".id", "is required in multi-cluster mode")
		}
		s, ok := id.(string)
		if !ok || !idPattern.MatchString(s) {
			return c, errorf(path+".id", "must match ^[a-z0-9]{1,64}$")
		}
		c.ID = s
	}
	steps := []func(string, map[string]any, bool) error{
		c.parseConnection, c.parseWeight, c.parseNamespaces,
		c.parseLabels, c.parseSharedSize, c.parseWatchSlices, c.parseContentType, c.parseAnswers,
	}
	for _, step := range steps {
		if err := step(path, m, multi); err != nil {
			return c, err
		}
	}
	return c, nil
}

func (c *Cluster) parseService(path string, m map[string]any, multi bool) error {
	path += ".service"
	svc, err := subMap(path, m["service"], serviceKeys)
	if err != nil {
		return err
	}
	c.Service.Schema = DefaultSchema
	if v, ok := svc["schema"]; ok {
		s, ok := v.(string)
		if !ok || (s != "http" && s != "https") {
			return errorf(path+".schema", "must be http or https")
		}
		c.Service.Schema = s
	}

	// host
	if v, ok := svc["host"]; ok {
		s, ok := v.(string)
		if !ok {
			return errorf(path+".host", "must be a string (an IPv4 address, an IPv6 address, a DNS name or ${ENV})")
		}
		c.Service.Host = s
	} else if multi {
		return errorf(path+".host", "is required in multi-cluster mode")
	} else {
		c.Service.Host = DefaultHost
	}
	if c.Host, err = expand(path+".host", c.Service.Host); err != nil {
		return err
	}
	if err := checkHost(path+".host", c.Host); err != nil {
		return err
	}

	// port: a YAML integer, or a string (literal digits or ${ENV})
	switch v := svc["port"].(type) {
	case nil: // absent (checkKeys drops null values)
		if multi {
			return errorf(path+".port", "is required in multi-cluster mode")
		}
		c.Service.Port = DefaultPort
	case uint64:
		c.Service.Port, c.portIsInt = strconv.FormatUint(v, 10), true
	case string:
		c.Service.Port = v
	default:
		return errorf(path+".port", "must be an integer 1..65535")
	}
	portText, err := expand(path+".port", c.Service.Port)
	if err != nil {
		return err
	}
	if c.Port, err = parsePort(portText); err != nil {
		return errorf(path+".port", "must be an integer 1..65535, got %q", portText)
	}

	if c.Service.CAFile, c.CAFile, err = optionalPath(path+".ca_file", svc["ca_file"]); err != nil {
		return err
	}
	if c.Service.SSLVerify, err = optionalBool(path+".ssl_verify", svc["ssl_verify"]); err != nil {
		return err
	}
	if c.Service.SSLVerify != nil {
		c.SSLVerify = *c.Service.SSLVerify
	}
	return nil
}

// optionalBool reads an optional true/false key; nil when absent.
func optionalBool(path string, v any) (*bool, error) {
	if v == nil {
		return nil, nil
	}
	b, ok := v.(bool)
	if !ok {
		return nil, errorf(path, "must be true or false")
	}
	return &b, nil
}

func (c *Cluster) parseClient(path string, m map[string]any, multi bool) error {
	path += ".client"
	cl, err := subMap(path, m["client"], clientKeys)
	if err != nil {
		return err
	}
	if v, ok := cl["token"]; ok {
		s, ok := v.(string)
		if !ok {
			return errorf(path+".token", "must be a string")
		}
		c.Client.Token = s
		if c.Token, err = expand(path+".token", s); err != nil {
			return err
		}
		// A `token: |` block scalar ends with a newline; a token never
		// contains whitespace, so trimming only removes accidents.
		if c.Token = strings.TrimSpace(c.Token); c.Token == "" {
			return errorf(path+".token", "must not be empty")
		}
	}
	if c.Client.TokenFile, c.TokenFile, err = optionalPath(path+".token_file", cl["token_file"]); err != nil {
		return err
	}
	if c.Client.CertFile, c.CertFile, err = optionalPath(path+".cert_file", cl["cert_file"]); err != nil {
		return err
	}
	if c.Client.KeyFile, c.KeyFile, err = optionalPath(path+".key_file", cl["key_file"]); err != nil {
		return err
	}
	// client.ssl_verify is where some APISIX versions put service.ssl_verify:
	// the same switch. Two different answers are a mistake worth refusing.
	if c.Client.SSLVerify, err = optionalBool(path+".ssl_verify", cl["ssl_verify"]); err != nil {
		return err
	}
	if cv, sv := c.Client.SSLVerify, c.Service.SSLVerify; cv != nil {
		if sv != nil && *sv != *cv {
			svcPath := strings.TrimSuffix(path, ".client") + ".service.ssl_verify"
			return errorf(path+".ssl_verify", "disagrees with %s (%t vs %t); both keys mean the same: set one, or both alike", svcPath, *cv, *sv)
		}
		c.SSLVerify = *cv
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return errorf(path, "cert_file and key_file must be set together")
	}
	switch {
	case c.Client.Token != "" && c.Client.TokenFile != "":
		return errorf(path, "token and token_file must not both be set")
	case c.Client.Token != "" || c.Client.TokenFile != "" || c.CertFile != "":
		// A client certificate alone (mTLS) is enough.
	case multi:
		return errorf(path, "token or token_file is required in multi-cluster mode")
	default:
		c.Client.TokenFile, c.TokenFile = DefaultTokenFile, DefaultTokenFile
	}
	return nil
}

func (c *Cluster) parseWeight(path string, m map[string]any, _ bool) error {
	v, ok := m["default_weight"]
	if !ok {
		return nil
	}
	path += ".default_weight"
	n, ok := v.(uint64) // goccy decodes non-negative integers as uint64
	if !ok {
		return errorf(path, "must be an integer >= 0")
	}
	if n > math.MaxInt32 {
		return errorf(path, "must be at most %d", math.MaxInt32)
	}
	c.DefaultWeight = int(n)
	return nil
}

func (c *Cluster) parseNamespaces(path string, m map[string]any, _ bool) error {
	path += ".namespace_selector"
	_, c.hasNSField = m["namespace_selector"]
	ns, err := subMap(path, m["namespace_selector"], nsKeys)
	if err != nil {
		return err
	}
	if len(ns) > 1 {
		return errorf(path, "at most one of equal, not_equal, match, not_match")
	}
	sel := &c.NamespaceSelector
	for _, kv := range []struct {
		key string
		dst *string
	}{{"equal", &sel.Equal}, {"not_equal", &sel.NotEqual}} {
		if v, ok := ns[kv.key]; ok {
			s, ok := v.(string)
			if !ok || s == "" {
				return errorf(path+"."+kv.key, "must be a non-empty string")
			}
			*kv.dst = s
		}
	}
	for _, kv := range []struct {
		key string
		dst *[]string
	}{{"match", &sel.Match}, {"not_match", &sel.NotMatch}} {
		v, ok := ns[kv.key]
		if !ok {
			continue
		}
		list, ok := v.([]any)
		if !ok || len(list) == 0 {
			return errorf(path+"."+kv.key, "must be a non-empty list of regular expressions")
		}
		*kv.dst = make([]string, len(list))
		for i, item := range list {
			s, ok := item.(string)
			if !ok || s == "" {
				return errorf(fmt.Sprintf("%s.%s[%d]", path, kv.key, i), "must be a non-empty string (a regular expression)")
			}
			(*kv.dst)[i] = s
		}
	}
	if c.Namespaces, err = selector.NewNamespace(sel.Equal, sel.NotEqual, sel.Match, sel.NotMatch); err != nil {
		// With at most one key checked above, NewNamespace's messages
		// start with the offending key ("match[1]: invalid ...").
		if key, msg, ok := strings.Cut(err.Error(), ": "); ok {
			return errorf(path+"."+key, "%s", msg)
		}
		return errorf(path, "%v", err)
	}
	return nil
}

func (c *Cluster) parseLabels(path string, m map[string]any, _ bool) error {
	v, ok := m["label_selector"]
	if !ok {
		return nil
	}
	path += ".label_selector"
	s, ok := v.(string)
	if !ok {
		return errorf(path, "must be a string (Kubernetes label selector syntax)")
	}
	l, err := selector.ParseLabels(s)
	if err != nil {
		return errorf(path, "%v", err)
	}
	c.LabelSelector, c.Labels = s, l
	return nil
}

// Table sizes: below 16k a table holds next to nothing; above 1g is surely
// a typo (1m holds about 1000 services).
const (
	minSharedSize = 16 << 10
	maxSharedSize = 1 << 30
)

var sizePattern = regexp.MustCompile(`^([0-9]+)([kKmMgG]?)$`)

func (c *Cluster) parseSharedSize(path string, m map[string]any, _ bool) error {
	v, ok := m["shared_size"]
	if !ok {
		c.SharedSizeBytes = 1 << 20
		return nil
	}
	path += ".shared_size"
	const rule = "must be a size like 1m: an integer with an optional k, m or g suffix (binary: 1m = 1048576 bytes)"
	switch v := v.(type) {
	case string:
		c.SharedSize = v
	case uint64:
		c.SharedSize = strconv.FormatUint(v, 10)
	default:
		return errorf(path, "%s", rule)
	}
	sm := sizePattern.FindStringSubmatch(c.SharedSize)
	if sm == nil {
		return errorf(path, "%s, got %q", rule, c.SharedSize)
	}
	n, err := strconv.ParseInt(sm[1], 10, 64)
	shift := map[string]uint{"": 0, "k": 10, "m": 20, "g": 30}[strings.ToLower(sm[2])]
	if err != nil || n > maxSharedSize>>shift {
		return errorf(path, "must be at most 1g, got %q", c.SharedSize)
	}
	if c.SharedSizeBytes = n << shift; c.SharedSizeBytes < minSharedSize {
		return errorf(path, "must be at least 16k, got %q", c.SharedSize)
	}
	return nil
}

func (c *Cluster) parseWatchSlices(path string, m map[string]any, _ bool) error {
	v, ok := m["watch_endpoint_slices"]
	if !ok {
		return nil
	}
	b, ok := v.(bool)
	if !ok {
		return errorf(path+".watch_endpoint_slices", "must be true or false")
	}
	c.WatchEndpointSlices = b
	return nil
}

// parseContentType reads content_type: the wire format asked of the
// apiserver, protobuf (the default, as kube-proxy) or json.
func (c *Cluster) parseContentType(path string, m map[string]any, _ bool) error {
	c.ContentType = ContentTypeProtobuf
	v, ok := m["content_type"]
	if !ok {
		return nil
	}
	s, ok := v.(string)
	if !ok || (s != ContentTypeProtobuf && s != ContentTypeJSON) {
		return errorf(path+".content_type", "must be protobuf or json")
	}
	c.ContentType = s
	return nil
}

// checkKeys refuses keys not in allowed (typos would otherwise be silently
// ignored), and drops null values so that `key:` with no value is absent.
func checkKeys(path string, m map[string]any, allowed []string) error {
	var unknown []string
	for k, v := range m {
		if !slices.Contains(allowed, k) {
			unknown = append(unknown, k)
		} else if v == nil {
			delete(m, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return errorf(path+"."+unknown[0], "unknown key (allowed: %s)", strings.Join(allowed, ", "))
	}
	return nil
}

// subMap returns the map at v (nil = empty), checked against allowed keys.
func subMap(path string, v any, allowed []string) (map[string]any, error) {
	if v == nil {
		return map[string]any{}, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errorf(path, "must be a map")
	}
	return m, checkKeys(path, m, allowed)
}

// optionalPath reads an optional file-path string: as written, and expanded.
func optionalPath(path string, v any) (written, resolved string, err error) {
	if v == nil {
		return "", "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", "", errorf(path, "must be a string (a file path)")
	}
	if resolved, err = expand(path, s); err != nil {
		return "", "", err
	}
	if resolved == "" {
		return "", "", errorf(path, "must not be empty")
	}
	return s, resolved, nil
}

// envRef matches, at the start of the text, ${NAME} or APISIX's
// ${{NAME}} / ${{NAME:=default}} (accepted so that an APISIX config.yaml
// using them needs no edit).
var envRef = regexp.MustCompile(`^\$\{(?:([A-Za-z_][A-Za-z0-9_]*)|\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*(:=([^}]*))?\})\}`)

// expand replaces environment references in s. An unset variable is an
// error (a silent "" would surface much later as a confusing connection
// failure), as is a "${" that starts no valid reference.
func expand(path, s string) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		b.WriteString(s[:i])
		s = s[i:]
		m := envRef.FindStringSubmatch(s)
		if m == nil {
			if strings.HasSuffix(path, ".token") {
				s = "${..." // never echo a token
			}
			return "", errorf(path, "malformed environment reference in %q: want ${NAME} with NAME matching [A-Za-z_][A-Za-z0-9_]*", s)
		}
		name := m[1] + m[2]
		val, ok := os.LookupEnv(name)
		switch {
		case !ok && m[3] != "":
			val = m[4]
		case !ok:
			return "", errorf(path, "environment variable %s is not set", name)
		}
		b.WriteString(val)
		s = s[len(m[0]):]
	}
}

func parsePort(s string) (int, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, strconv.ErrSyntax
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, strconv.ErrRange
	}
	return n, nil
}

// checkHost accepts an IP address (IPv6 without brackets) or a DNS name.
func checkHost(path, h string) error {
	const rule = "must be an IPv4 address, an IPv6 address (without brackets) or a DNS name"
	if h == "" {
		return errorf(path, "must not be empty")
	}
	if ip, err := netip.ParseAddr(h); err == nil {
		if ip.Zone() != "" {
			return errorf(path, "%q: %s", h, zoneRule(ip.Zone()))
		}
		return nil
	}
	if !isDNSName(h) {
		return errorf(path, "%s, got %q", rule, h)
	}
	return nil
}

// zoneRule is why a zoned IPv6 address (fe80::1%eth0) is refused: the
// zone would have to travel in the URL as %25eth0, and over https no
// certificate can name a zoned address, so every request would fail.
func zoneRule(zone string) string {
	return "an IPv6 address with a zone (%" + zone + ") is not supported: no apiserver certificate can name it; use an address without a zone or a DNS name"
}

// isDNSName is lenient on case and '_' (Go's resolver accepts both) but
// refuses what is clearly not a host: brackets, ports, schemes, spaces,
// and all-digit names such as a mistyped IPv4 "10.0.0.300".
func isDNSName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	labels := strings.Split(s, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	last := labels[len(labels)-1]
	return strings.TrimLeft(last, "0123456789") != ""
}
