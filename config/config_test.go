package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// setEnv sets the variables kdisc reads in the fixtures; unset lists
// variables that must be absent (restored after the test).
func setEnv(t *testing.T, unset ...string) {
	t.Helper()
	for k, v := range map[string]string{
		"KUBERNETES_SERVICE_HOST": "10.96.0.1",
		"KUBERNETES_SERVICE_PORT": "443",
		"KDISC_TEST_TOKEN":        "tok-123",
		"KDISC_TEST_DOMAIN":       "example.com",
		"KDISC_TEST_PORT":         "16443",
		"KDISC_TEST_TOKEN_DIR":    "/run/kdisc",
	} {
		t.Setenv(k, v)
	}
	for _, k := range unset {
		t.Setenv(k, "") // registers the restore
		os.Unsetenv(k)
	}
}

func effectiveJSON(t *testing.T, c *Config) string {
	t.Helper()
	b, err := c.EffectiveJSON()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestFixtures(t *testing.T) {
	setEnv(t)
	tests := []struct {
		file      string
		effective string
		check     func(t *testing.T, c *Config)
	}{
		{
			file:      "single-reference.yaml",
			effective: `{"service":{"schema":"https","host":"${KUBERNETES_SERVICE_HOST}","port":"${KUBERNETES_SERVICE_PORT}"},"client":{"token_file":"/var/run/secrets/kubernetes.io/serviceaccount/token"},"default_weight":50,"namespace_selector":{"equal":"default"},"label_selector":"first=\"a\",second=\"b\"","shared_size":"1m","watch_endpoint_slices":false,"content_type":"protobuf","terminating_fallback":true,"node_detail":false}`,
			check: func(t *testing.T, c *Config) {
				k := c.Clusters[0]
				eq(t, k.BaseURL(), "https://10.96.0.1:443")
				eq(t, k.Labels.String(), "first=a,second=b")
				eq(t, k.Namespaces.FieldSelector(), "metadata.namespace=default")
				eq(t, k.TableName(), "kubernetes")
				eq(t, k.SharedSizeBytes, int64(1<<20))
			},
		},
		{
			file:      "contract-single.yaml",
			effective: `{"service":{"schema":"https","host":"${KUBERNETES_SERVICE_HOST}","port":"${KUBERNETES_SERVICE_PORT}"},"client":{"token_file":"/var/run/secrets/kubernetes.io/serviceaccount/token"},"default_weight":50,"namespace_selector":{"equal":"default"},"label_selector":"first=\"a\",second=\"b\"","shared_size":"1m","watch_endpoint_slices":false,"content_type":"protobuf","terminating_fallback":true,"node_detail":false}`,
		},
		{
			file:      "multi-reference.yaml",
			effective: `[{"id":"release","service":{"schema":"https","host":"1.cluster.com","port":"6443"},"client":{"token_file":"/var/run/secrets/kubernetes.io/serviceaccount/token"},"default_weight":50,"namespace_selector":{"equal":"default"},"label_selector":"first=\"a\",second=\"b\"","shared_size":"1m","watch_endpoint_slices":false,"content_type":"protobuf","terminating_fallback":true,"node_detail":false}]`,
			check: func(t *testing.T, c *Config) {
				eq(t, c.Multi, true)
				k := c.Clusters[0]
				eq(t, k.BaseURL(), "https://1.cluster.com:6443")
				eq(t, k.TableName(), "kubernetes-release")
				eq(t, k.KeyPath(), "discovery.kubernetes[0]")
			},
		},
		{
			file:      "minimal.yaml",
			effective: `{"service":{"schema":"https","host":"${KUBERNETES_SERVICE_HOST}","port":"${KUBERNETES_SERVICE_PORT}"},"client":{"token_file":"/var/run/secrets/kubernetes.io/serviceaccount/token"},"default_weight":50,"shared_size":"1m","watch_endpoint_slices":false,"content_type":"protobuf","terminating_fallback":true,"node_detail":false}`,
			check: func(t *testing.T, c *Config) {
				k := c.Clusters[0]
				eq(t, c.Multi, false)
				eq(t, k.Host, "10.96.0.1")
				eq(t, k.Port, 443)
				eq(t, k.TokenFile, DefaultTokenFile)
				eq(t, k.Token, "")
				eq(t, k.SSLVerify, true)
				eq(t, k.Labels.Empty(), true)
				eq(t, k.Namespaces.Allows("anything"), true)
				eq(t, k.Namespaces.FieldSelector(), "")
			},
		},
		{
			file:      "outside-pod.yaml",
			effective: `{"service":{"schema":"https","host":"10.96.0.1","port":6443},"client":{"token":"<redacted>"},"default_weight":50,"shared_size":"1m","watch_endpoint_slices":false,"content_type":"protobuf","terminating_fallback":true,"node_detail":false}`,
			check: func(t *testing.T, c *Config) {
				eq(t, c.Clusters[0].Token, "tok-123")
				eq(t, c.Clusters[0].TokenFile, "")
			},
		},
		{
			file: "multi-full.yaml",
			effective: `[` +
				`{"id":"first","service":{"schema":"https","host":"172.18.164.170","port":"6443"},"client":{"token":"<redacted>"},"default_weight":50,"shared_size":"1m","watch_endpoint_slices":false,"content_type":"protobuf","terminating_fallback":true,"node_detail":false},` +
				`{"id":"second","service":{"schema":"http","host":"fd00::10","port":8080},"client":{"token_file":"/etc/kdisc/second.token"},"default_weight":0,"namespace_selector":{"match":["default","^my-[a-z]+$"]},"shared_size":"4M","watch_endpoint_slices":true,"content_type":"protobuf","terminating_fallback":true,"node_detail":false},` +
				`{"id":"3","service":{"schema":"https","host":"api.${KDISC_TEST_DOMAIN}","port":"${KDISC_TEST_PORT}","ca_file":"/etc/kdisc/ca.crt","ssl_verify":false},"client":{"token_file":"/etc/kdisc/third.token","cert_file":"/etc/kdisc/client.crt","key_file":"/etc/kdisc/client.key"},"default_weight":50,"namespace_selector":{"not_match":["kube-.*"]},"label_selector":"app.kubernetes.io/part-of in (shop, web), tier!=cache, !canary","shared_size":"64k","watch_endpoint_slices":false,"content_type":"protobuf","terminating_fallback":true,"node_detail":false}` +
				`]`,
			check: func(t *testing.T, c *Config) {
				first, second, third := c.Clusters[0], c.Clusters[1], c.Clusters[2]
				eq(t, first.Token, "tok-123") // block scalar newline trimmed
				eq(t, second.BaseURL(), "http://[fd00::10]:8080")
				eq(t, second.DefaultWeight, 0)
				eq(t, second.SharedSizeBytes, int64(4<<20))
				eq(t, second.Namespaces.Allows("my-app"), true)
				eq(t, second.Namespaces.Allows("default2"), false)
				eq(t, third.BaseURL(), "https://api.example.com:16443")
				eq(t, third.SSLVerify, false)
				eq(t, third.CAFile, "/etc/kdisc/ca.crt")
				eq(t, third.Namespaces.Allows("kube-system"), false)
				eq(t, third.Labels.String(), "app.kubernetes.io/part-of in (shop,web),!canary,tier!=cache")
				eq(t, third.SharedSizeBytes, int64(64<<10))
				eq(t, strings.Join(c.TableNames(), " "), "kubernetes-first kubernetes-second kubernetes-3")
				got, ok := c.Cluster("second")
				eq(t, ok, true)
				eq(t, got.ID, "second")
			},
		},
		{
			// client.ssl_verify is shown where it was written, and the
			// result under service.ssl_verify (the key APISIX documents).
			file:      "client-ssl-verify.yaml",
			effective: `{"service":{"schema":"https","host":"10.96.0.1","port":6443,"ssl_verify":false},"client":{"token_file":"/etc/kdisc/token","ssl_verify":false},"default_weight":50,"shared_size":"1m","watch_endpoint_slices":false,"content_type":"protobuf","terminating_fallback":true,"node_detail":false}`,
			check: func(t *testing.T, c *Config) {
				eq(t, c.Clusters[0].SSLVerify, false)
			},
		},
		{
			file:      "apisix-config.yaml",
			effective: `{"service":{"schema":"https","host":"kubernetes.default.svc","port":"443"},"client":{"token_file":"${{KDISC_TEST_TOKEN_DIR}}/token"},"default_weight":50,"namespace_selector":{"not_equal":"kube-system"},"shared_size":"2m","watch_endpoint_slices":false,"content_type":"protobuf","terminating_fallback":true,"node_detail":false}`,
			check: func(t *testing.T, c *Config) {
				eq(t, c.Clusters[0].TokenFile, "/run/kdisc/token")
				eq(t, c.Clusters[0].Namespaces.FieldSelector(), "metadata.namespace!=kube-system")
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			c, err := Load(filepath.Join("..", "testdata", "config", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if got := effectiveJSON(t, c); got != tt.effective {
				t.Errorf("Effective:\n got %s\nwant %s", got, tt.effective)
			}
			if tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}

func TestEffectiveWithEncodingJSON(t *testing.T) {
	setEnv(t)
	c := mustParse(t, "discovery:\n  kubernetes:\n    client: {token: abc}\n")
	// json.Marshal escapes '<' and '>'; the value is the same JSON string.
	b, err := json.Marshal(c.Effective())
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	eq(t, back["client"].(map[string]any)["token"].(string), "<redacted>")
}

func TestTokenNeverInEffective(t *testing.T) {
	setEnv(t)
	c := mustParse(t, "discovery:\n  kubernetes:\n    client:\n      token: s3cr3t-literal\n")
	if got := effectiveJSON(t, c); strings.Contains(got, "s3cr3t") || !strings.Contains(got, `"token":"<redacted>"`) {
		t.Errorf("token not redacted: %s", got)
	}
	c = mustParse(t, "discovery:\n  kubernetes:\n    client:\n      token: ${KDISC_TEST_TOKEN}\n")
	if got := effectiveJSON(t, c); strings.Contains(got, "tok-123") {
		t.Errorf("expanded token leaked: %s", got)
	}
}

func TestDefaults(t *testing.T) {
	setEnv(t)
	c := mustParse(t, "discovery:\n  kubernetes: {}\n")
	k := c.Clusters[0]
	eq(t, len(c.Clusters), 1)
	eq(t, k.ID, "")
	eq(t, k.Service.Schema, "https")
	eq(t, k.Service.Host, "${KUBERNETES_SERVICE_HOST}")
	eq(t, k.Service.Port, "${KUBERNETES_SERVICE_PORT}")
	eq(t, k.Client.TokenFile, DefaultTokenFile)
	eq(t, k.DefaultWeight, 50)
	eq(t, k.SharedSize, "1m")
	eq(t, k.SharedSizeBytes, int64(1<<20))
	eq(t, k.WatchEndpointSlices, false)
	eq(t, k.SSLVerify, true)
	eq(t, k.KeyPath(), "discovery.kubernetes")

	// A token disables the default token_file.
	c = mustParse(t, "discovery:\n  kubernetes:\n    client: {token: abc}\n")
	eq(t, c.Clusters[0].TokenFile, "")
	eq(t, c.Clusters[0].Client.TokenFile, "")

	// null values count as absent (the APISIX page's `host: # enter ...`).
	c = mustParse(t, "discovery:\n  kubernetes:\n    service:\n      host:\n      port:\n    client:\n      token:\n")
	eq(t, c.Clusters[0].Host, "10.96.0.1")
	eq(t, c.Clusters[0].TokenFile, DefaultTokenFile)

	// Multi mode keeps the optional defaults.
	c = mustParse(t, "discovery:\n  kubernetes:\n  - id: a\n    service: {host: h, port: 1}\n    client: {token: t}\n")
	k = c.Clusters[0]
	eq(t, k.Service.Schema, "https")
	eq(t, k.DefaultWeight, 50)
	eq(t, k.SharedSizeBytes, int64(1<<20))
	eq(t, k.SSLVerify, true)
}

func TestSharedSize(t *testing.T) {
	setEnv(t)
	for in, want := range map[string]int64{
		"16k": 16 << 10, "16K": 16 << 10, "1m": 1 << 20, "1M": 1 << 20, "10m": 10 << 20,
		"1g": 1 << 30, "1G": 1 << 30, "1024m": 1 << 30, "16384": 16384, "1048576": 1 << 20,
	} {
		c := mustParse(t, "discovery:\n  kubernetes:\n    shared_size: "+in+"\n")
		if got := c.Clusters[0].SharedSizeBytes; got != want {
			t.Errorf("shared_size %s: %d, want %d", in, got, want)
		}
	}
}

func TestExpand(t *testing.T) {
	setEnv(t, "KDISC_UNSET")
	t.Setenv("KDISC_EMPTY", "")
	tests := []struct {
		in, want, err string
	}{
		{in: "plain", want: "plain"},
		{in: "${KDISC_TEST_DOMAIN}", want: "example.com"},
		{in: "api.${KDISC_TEST_DOMAIN}:${KDISC_TEST_PORT}", want: "api.example.com:16443"},
		{in: "${KDISC_EMPTY}x", want: "x"},
		{in: "$KDISC_TEST_DOMAIN", want: "$KDISC_TEST_DOMAIN"}, // only the braced form
		{in: "cost$5", want: "cost$5"},
		{in: "${{KDISC_TEST_DOMAIN}}", want: "example.com"},
		{in: "${{ KDISC_TEST_DOMAIN }}", want: "example.com"},
		{in: "${{KDISC_UNSET:=fallback}}", want: "fallback"},
		{in: "${{KDISC_TEST_DOMAIN:=fallback}}", want: "example.com"},
		{in: "${KDISC_UNSET}", err: "k: environment variable KDISC_UNSET is not set"},
		{in: "${{KDISC_UNSET}}", err: "k: environment variable KDISC_UNSET is not set"},
		{in: "${kdisc_test_domain}", err: "environment variable kdisc_test_domain is not set"}, // exact name
		{in: "${1ABC}", err: `k: malformed environment reference in "${1ABC}"`},
		{in: "${A-B}", err: "malformed environment reference"},
		{in: "x${", err: "malformed environment reference"},
		{in: "${}", err: "malformed environment reference"},
		{in: "${ A }", err: "malformed environment reference"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := expand("k", tt.in)
			if tt.err != "" {
				wantErr(t, err, tt.err)
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("expand(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestPortAndHostForms(t *testing.T) {
	setEnv(t)
	tests := []struct {
		service  string
		host     string
		port     int
		portJSON string
	}{
		{"{host: 10.0.0.1, port: 6443}", "10.0.0.1", 6443, `6443`},
		{`{host: "10.0.0.1", port: "6443"}`, "10.0.0.1", 6443, `"6443"`},
		{`{host: "::1", port: 1}`, "::1", 1, `1`},
		{`{host: "fe80::1", port: 65535}`, "fe80::1", 65535, `65535`},
		{`{host: localhost, port: "${KDISC_TEST_PORT}"}`, "localhost", 16443, `"${KDISC_TEST_PORT}"`},
		{`{host: "k8s_api.internal.", port: 443}`, "k8s_api.internal.", 443, `443`},
		{`{host: "1.cluster.com", port: 443}`, "1.cluster.com", 443, `443`},
	}
	for _, tt := range tests {
		t.Run(tt.service, func(t *testing.T) {
			c := mustParse(t, "discovery:\n  kubernetes:\n    service: "+tt.service+"\n")
			eq(t, c.Clusters[0].Host, tt.host)
			eq(t, c.Clusters[0].Port, tt.port)
			if got := effectiveJSON(t, c); !strings.Contains(got, `"port":`+tt.portJSON+`}`) {
				t.Errorf("effective %s: want port %s", got, tt.portJSON)
			}
		})
	}
}

func TestInvalid(t *testing.T) {
	setEnv(t, "KDISC_UNSET")
	t.Setenv("KDISC_TEST_ZONED", "fd00::1%2")
	const k = "discovery:\n  kubernetes:\n"
	const m = "discovery:\n  kubernetes:\n  - id: a\n    service: {host: h, port: 1}\n    client: {token: t}\n"
	tests := []struct {
		name, yaml, want string
	}{
		// document shape
		{"empty file", "", "discovery.kubernetes: is required"},
		{"no discovery", "apisix:\n  node_listen: [9080]\n", "discovery.kubernetes: is required"},
		{"no kubernetes", "discovery:\n  dns: {servers: []}\n", "discovery.kubernetes: is required"},
		{"kubernetes null", "discovery:\n  kubernetes:\n", "discovery.kubernetes: must be a map (single cluster) or a list (multi cluster), not empty; write `kubernetes: {}`"},
		{"kubernetes scalar", "discovery:\n  kubernetes: yes\n", "discovery.kubernetes: must be a map (single cluster) or a list (multi cluster)"},
		{"discovery scalar", "discovery: 1\n", "discovery: must be a map"},
		{"document list", "- a\n", "config: the document must be a map"},
		{"bad yaml", "discovery: [\n", "config: invalid YAML:"},
		{"duplicate key", k + "    default_weight: 1\n    default_weight: 2\n", "config: invalid YAML:"},

		// unknown keys
		{"typo top", k + "    servce: {}\n", "discovery.kubernetes.servce: unknown key (allowed: service, client, kubeconfig, context, default_weight, namespace_selector, label_selector, shared_size, watch_endpoint_slices, content_type, terminating_fallback, zone, node, node_detail)"},
		{"id in single mode", k + "    id: a\n", "discovery.kubernetes.id: unknown key"},
		{"typo service", k + "    service: {hots: x}\n", "discovery.kubernetes.service.hots: unknown key (allowed: schema, host, port, ca_file, ssl_verify)"},
		{"typo client", k + "    client: {tokenfile: x}\n", "discovery.kubernetes.client.tokenfile: unknown key (allowed: token, token_file, cert_file, key_file, ssl_verify)"},
		{"typo ns", k + "    namespace_selector: {equals: x}\n", "discovery.kubernetes.namespace_selector.equals: unknown key (allowed: equal, not_equal, match, not_match)"},
		{"unknown keys sorted", k + "    zz: 1\n    aa: 1\n", "discovery.kubernetes.aa: unknown key"},
		{"service not map", k + "    service: x\n", "discovery.kubernetes.service: must be a map"},
		{"client not map", k + "    client: [a]\n", "discovery.kubernetes.client: must be a map"},

		// service
		{"schema", k + "    service: {schema: ftp}\n", "discovery.kubernetes.service.schema: must be http or https"},
		{"schema case", k + "    service: {schema: HTTPS}\n", "discovery.kubernetes.service.schema: must be http or https"},
		{"host env unset explicit", k + "    service: {host: '${KDISC_UNSET}'}\n", "discovery.kubernetes.service.host: environment variable KDISC_UNSET is not set"},
		{"host empty", k + "    service: {host: ''}\n", "discovery.kubernetes.service.host: must not be empty"},
		{"host brackets", k + "    service: {host: '[::1]'}\n", `discovery.kubernetes.service.host: must be an IPv4 address, an IPv6 address (without brackets) or a DNS name, got "[::1]"`},
		{"host url", k + "    service: {host: 'https://k8s'}\n", `discovery.kubernetes.service.host: must be an IPv4 address, an IPv6 address (without brackets) or a DNS name, got "https://k8s"`},
		{"host with port", k + "    service: {host: 'k8s:443'}\n", "discovery.kubernetes.service.host: must be an IPv4"},
		{"host bad ipv4", k + "    service: {host: 10.0.0.300}\n", `discovery.kubernetes.service.host: must be an IPv4 address, an IPv6 address (without brackets) or a DNS name, got "10.0.0.300"`},
		{"host space", k + "    service: {host: 'a b'}\n", "discovery.kubernetes.service.host: must be an IPv4"},
		{"host dash label", k + "    service: {host: '-a.b'}\n", "discovery.kubernetes.service.host: must be an IPv4"},
		{"host number", k + "    service: {host: 10}\n", "discovery.kubernetes.service.host: must be a string"},
		// A zoned IPv6 address would need "%25" in the URL, and no
		// certificate can name it: refused at start, not at every request.
		{"host ipv6 zone", k + "    service: {host: 'fe80::1%eth0'}\n", `discovery.kubernetes.service.host: "fe80::1%eth0": an IPv6 address with a zone (%eth0) is not supported`},
		{"host ipv6 zone from env", k + "    service: {host: '${KDISC_TEST_ZONED}', port: 1}\n", `discovery.kubernetes.service.host: "fd00::1%2": an IPv6 address with a zone (%2) is not supported`},
		{"host ipv6 zone multi", m + "  - id: b\n    service: {host: 'fe80::1%eth0', port: 1}\n    client: {token: t}\n", `discovery.kubernetes[1].service.host: "fe80::1%eth0": an IPv6 address with a zone (%eth0) is not supported`},
		{"port zero", k + "    service: {port: 0}\n", `discovery.kubernetes.service.port: must be an integer 1..65535, got "0"`},
		{"port big", k + "    service: {port: 65536}\n", `discovery.kubernetes.service.port: must be an integer 1..65535, got "65536"`},
		{"port negative", k + "    service: {port: -1}\n", "discovery.kubernetes.service.port: must be an integer 1..65535"},
		{"port float", k + "    service: {port: 1.5}\n", "discovery.kubernetes.service.port: must be an integer 1..65535"},
		{"port text", k + "    service: {port: abc}\n", `discovery.kubernetes.service.port: must be an integer 1..65535, got "abc"`},
		{"port plus", k + "    service: {port: '+443'}\n", `discovery.kubernetes.service.port: must be an integer 1..65535, got "+443"`},
		{"port env garbage", k + "    service: {port: '${KDISC_TEST_DOMAIN}'}\n", `discovery.kubernetes.service.port: must be an integer 1..65535, got "example.com"`},
		{"port env unset", k + "    service: {port: '${KDISC_UNSET}'}\n", "discovery.kubernetes.service.port: environment variable KDISC_UNSET is not set"},
		{"ssl_verify", k + "    service: {ssl_verify: 'no'}\n", "discovery.kubernetes.service.ssl_verify: must be true or false"},
		{"client ssl_verify", k + "    client: {ssl_verify: 'no'}\n", "discovery.kubernetes.client.ssl_verify: must be true or false"},
		{"ssl_verify disagree", k + "    service: {ssl_verify: true}\n    client: {ssl_verify: false}\n", "discovery.kubernetes.client.ssl_verify: disagrees with discovery.kubernetes.service.ssl_verify (false vs true)"},
		{"ssl_verify disagree multi", m + "  - id: b\n    service: {host: h, port: 1, ssl_verify: false}\n    client: {token: t, ssl_verify: true}\n", "discovery.kubernetes[1].client.ssl_verify: disagrees with discovery.kubernetes[1].service.ssl_verify (true vs false)"},
		{"ca_file empty", k + "    service: {ca_file: ''}\n", "discovery.kubernetes.service.ca_file: must not be empty"},
		{"ca_file env", k + "    service: {ca_file: '${KDISC_UNSET}'}\n", "discovery.kubernetes.service.ca_file: environment variable KDISC_UNSET is not set"},

		// client
		{"both tokens", k + "    client: {token: a, token_file: /b}\n", "discovery.kubernetes.client: token and token_file must not both be set"},
		{"token empty", k + "    client: {token: '  '}\n", "discovery.kubernetes.client.token: must not be empty"},
		{"token number", k + "    client: {token: 12}\n", "discovery.kubernetes.client.token: must be a string"},
		{"token env", k + "    client: {token: '${KDISC_UNSET}'}\n", "discovery.kubernetes.client.token: environment variable KDISC_UNSET is not set"},
		{"token_file env", k + "    client: {token_file: '${KDISC_UNSET}/t'}\n", "discovery.kubernetes.client.token_file: environment variable KDISC_UNSET is not set"},
		{"cert without key", k + "    client: {cert_file: /c}\n", "discovery.kubernetes.client: cert_file and key_file must be set together"},
		{"key without cert", k + "    client: {key_file: /k}\n", "discovery.kubernetes.client: cert_file and key_file must be set together"},

		// default_weight
		{"weight string", k + "    default_weight: abc\n", "discovery.kubernetes.default_weight: must be an integer >= 0"},
		{"weight quoted", k + "    default_weight: '50'\n", "discovery.kubernetes.default_weight: must be an integer >= 0"},
		{"weight negative", k + "    default_weight: -1\n", "discovery.kubernetes.default_weight: must be an integer >= 0"},
		{"weight float", k + "    default_weight: 1.5\n", "discovery.kubernetes.default_weight: must be an integer >= 0"},
		{"weight big", k + "    default_weight: 2147483648\n", "discovery.kubernetes.default_weight: must be at most 2147483647"},
		{"weight huge", k + "    default_weight: 99999999999999999999\n", "discovery.kubernetes.default_weight: must be an integer >= 0"},

		// namespace_selector
		{"ns two keys", k + "    namespace_selector: {equal: a, not_equal: b}\n", "discovery.kubernetes.namespace_selector: at most one of equal, not_equal, match, not_match"},
		{"ns not map", k + "    namespace_selector: default\n", "discovery.kubernetes.namespace_selector: must be a map"},
		{"ns equal empty", k + "    namespace_selector: {equal: ''}\n", "discovery.kubernetes.namespace_selector.equal: must be a non-empty string"},
		{"ns equal list", k + "    namespace_selector: {not_equal: [a]}\n", "discovery.kubernetes.namespace_selector.not_equal: must be a non-empty string"},
		{"ns equal invalid", k + "    namespace_selector: {equal: 'a,b'}\n", `discovery.kubernetes.namespace_selector.equal: "a,b" is not a valid namespace name`},
		{"ns match empty", k + "    namespace_selector: {match: []}\n", "discovery.kubernetes.namespace_selector.match: must be a non-empty list of regular expressions"},
		{"ns match string", k + "    namespace_selector: {match: default}\n", "discovery.kubernetes.namespace_selector.match: must be a non-empty list of regular expressions"},
		{"ns match item", k + "    namespace_selector: {not_match: [a, 1]}\n", "discovery.kubernetes.namespace_selector.not_match[1]: must be a non-empty string (a regular expression)"},
		{"ns match regex", k + "    namespace_selector: {match: [ok, 'a(']}\n", `discovery.kubernetes.namespace_selector.match[1]: invalid regular expression "a(": error parsing regexp: missing closing ): ` + "`a(`"},

		// label_selector
		{"labels syntax", k + "    label_selector: 'a=b,,c'\n", `discovery.kubernetes.label_selector: invalid label selector "a=b,,c": at column 5: expected a label key, found ","`},
		{"labels value", k + "    label_selector: 'a=b c'\n", `discovery.kubernetes.label_selector: invalid label selector "a=b c": at column 5`},
		{"labels gt not integer", k + "    label_selector: 'gen>x'\n", `discovery.kubernetes.label_selector: invalid label selector "gen>x": at column 5: value "x": for > and <, the value must be an integer`},
		{"labels type", k + "    label_selector: [a]\n", "discovery.kubernetes.label_selector: must be a string"},

		// shared_size
		{"size zero", k + "    shared_size: 0\n", `discovery.kubernetes.shared_size: must be at least 16k, got "0"`},
		{"size small", k + "    shared_size: 15k\n", `discovery.kubernetes.shared_size: must be at least 16k, got "15k"`},
		{"size negative", k + "    shared_size: -1m\n", `discovery.kubernetes.shared_size: must be a size like 1m: an integer with an optional k, m or g suffix (binary: 1m = 1048576 bytes), got "-1m"`},
		{"size mb", k + "    shared_size: 1mb\n", `discovery.kubernetes.shared_size: must be a size like 1m`},
		{"size garbage", k + "    shared_size: lots\n", `discovery.kubernetes.shared_size: must be a size like 1m`},
		{"size space", k + "    shared_size: '1 m'\n", `discovery.kubernetes.shared_size: must be a size like 1m`},
		{"size float", k + "    shared_size: 1.5\n", `discovery.kubernetes.shared_size: must be a size like 1m`},
		{"size big", k + "    shared_size: 2g\n", `discovery.kubernetes.shared_size: must be at most 1g, got "2g"`},
		{"size overflow", k + "    shared_size: 99999999999999999999999k\n", `discovery.kubernetes.shared_size: must be at most 1g`},

		// watch_endpoint_slices
		{"slices string", k + "    watch_endpoint_slices: 'true'\n", "discovery.kubernetes.watch_endpoint_slices: must be true or false"},
		{"slices yes", k + "    watch_endpoint_slices: yes\n", "discovery.kubernetes.watch_endpoint_slices: must be true or false"},

		// multi mode
		{"multi empty", "discovery:\n  kubernetes: []\n", "discovery.kubernetes: must list at least one cluster"},
		{"multi item scalar", "discovery:\n  kubernetes: [a]\n", "discovery.kubernetes[0]: must be a map"},
		{"multi no id", "discovery:\n  kubernetes:\n  - service: {host: h, port: 1}\n    client: {token: t}\n", "discovery.kubernetes[0].id: is required in multi-cluster mode"},
		{"multi id upper", m + "  - id: Second\n    service: {host: h, port: 1}\n    client: {token: t}\n", "discovery.kubernetes[1].id: must match ^[a-z0-9]{1,64}$"},
		{"multi id dash", m + "  - id: my-cluster\n", "discovery.kubernetes[1].id: must match ^[a-z0-9]{1,64}$"},
		{"multi id long", m + "  - id: " + strings.Repeat("a", 65) + "\n", "discovery.kubernetes[1].id: must match ^[a-z0-9]{1,64}$"},
		{"multi id int", m + "  - id: 1\n", "discovery.kubernetes[1].id: must match ^[a-z0-9]{1,64}$"},
		{"multi id empty", m + "  - id: ''\n", "discovery.kubernetes[1].id: must match ^[a-z0-9]{1,64}$"},
		{"multi id dup", m + "  - id: a\n    service: {host: h2, port: 2}\n    client: {token: t}\n", `discovery.kubernetes[1].id: must be unique: "a" is also the id of discovery.kubernetes[0]`},
		{"multi no host", m + "  - id: b\n    service: {port: 1}\n    client: {token: t}\n", "discovery.kubernetes[1].service.host: is required in multi-cluster mode"},
		{"multi no service", m + "  - id: b\n    client: {token: t}\n", "discovery.kubernetes[1].service.host: is required in multi-cluster mode"},
		{"multi no port", m + "  - id: b\n    service: {host: h}\n    client: {token: t}\n", "discovery.kubernetes[1].service.port: is required in multi-cluster mode"},
		{"multi no token", m + "  - id: b\n    service: {host: h, port: 1}\n", "discovery.kubernetes[1].client: token or token_file is required in multi-cluster mode"},
		{"multi typo", m + "  - id: b\n    lable_selector: a\n", "discovery.kubernetes[1].lable_selector: unknown key (allowed: id, service, "},
		{"multi weight", m + "  - id: b\n    service: {host: h, port: 1}\n    client: {token: t}\n    default_weight: x\n", "discovery.kubernetes[1].default_weight: must be an integer >= 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml))
			wantErr(t, err, tt.want)
			// Every message starts with the key path it is about.
			if !strings.HasPrefix(err.Error(), strings.SplitN(tt.want, ":", 2)[0]+":") {
				t.Errorf("error %q does not start with the key path of %q", err, tt.want)
			}
		})
	}
}

func TestMissingServiceEnv(t *testing.T) {
	setEnv(t, "KUBERNETES_SERVICE_HOST")
	_, err := Parse([]byte("discovery:\n  kubernetes: {}\n"))
	wantErr(t, err, "discovery.kubernetes.service.host: environment variable KUBERNETES_SERVICE_HOST is not set")

	setEnv(t, "KUBERNETES_SERVICE_PORT")
	_, err = Parse([]byte("discovery:\n  kubernetes: {}\n"))
	wantErr(t, err, "discovery.kubernetes.service.port: environment variable KUBERNETES_SERVICE_PORT is not set")

	// An explicit host and port need neither variable.
	setEnv(t, "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT")
	mustParse(t, "discovery:\n  kubernetes:\n    service: {host: k8s.local, port: 6443}\n")
}

func TestErrorType(t *testing.T) {
	setEnv(t)
	_, err := Parse([]byte("discovery:\n  kubernetes:\n    default_weight: -3\n"))
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("%v is not a *config.Error", err)
	}
	eq(t, ce.Path, "discovery.kubernetes.default_weight")
	eq(t, ce.Msg, "must be an integer >= 0")
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	wantErr(t, err, "config: open ")
}

func mustParse(t *testing.T, doc string) *Config {
	t.Helper()
	c, err := Parse([]byte(doc))
	if err != nil {
		t.Fatalf("Parse:\n%s\nerror: %v", doc, err)
	}
	return c
}

func eq[T comparable](t *testing.T, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("got %v, want %v", got, want)
	}
}

func wantErr(t *testing.T, err error, substr string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", substr)
	}
	if !strings.Contains(err.Error(), substr) {
		t.Errorf("error %q\ndoes not contain %q", err, substr)
	}
}

// A client certificate alone (mTLS) is a credential: no token is required
// and the in-pod token file is not assumed.
func TestClientCertificateAlone(t *testing.T) {
	single := "discovery:\n  kubernetes:\n    service: {host: h, port: 1}\n    client: {cert_file: /c, key_file: /k}\n"
	multi := "discovery:\n  kubernetes:\n  - id: a\n    service: {host: h, port: 1}\n    client: {cert_file: /c, key_file: /k}\n"
	for _, y := range []string{single, multi} {
		cfg, err := Parse([]byte(y))
		if err != nil {
			t.Fatalf("%v\n%s", err, y)
		}
		c := cfg.Clusters[0]
		if c.TokenFile != "" || c.Token != "" || c.CertFile != "/c" || c.KeyFile != "/k" {
			t.Errorf("got token %q token_file %q cert %q key %q", c.Token, c.TokenFile, c.CertFile, c.KeyFile)
		}
	}
}

// Error messages never echo a token, not even for a syntax error on the
// line after it.
func TestErrorsNeverShowTheToken(t *testing.T) {
	for _, y := range []string{
		"discovery:\n  kubernetes:\n    client:\n      token: SECRET-TOKEN-123\n    service: [oops\n",
		"discovery:\n  kubernetes:\n    service: {host: h, port: 1}\n    client:\n      token: \"SECRET-TOKEN-123${X\"\n",
	} {
		_, err := Parse([]byte(y))
		if err == nil {
			t.Fatalf("no error for\n%s", y)
		}
		if strings.Contains(err.Error(), "SECRET") {
			t.Errorf("error shows the token: %v", err)
		}
	}
}

// client.ssl_verify (where some APISIX versions put it) means the same as
// service.ssl_verify; both set alike is fine, and Effective shows the
// result under service and the client key as written.
func TestClientSSLVerifyMeansServiceSSLVerify(t *testing.T) {
	setEnv(t)
	const k = "discovery:\n  kubernetes:\n    service: {host: h, port: 1%s}\n    client: {token_file: /t%s}\n"
	tests := []struct {
		name, svc, client string
		want              bool
		svcJSON, clJSON   string
	}{
		{"neither", "", "", true, `"port":1}`, `"token_file":"/t"}`},
		{"service false", ", ssl_verify: false", "", false, `"port":1,"ssl_verify":false}`, `"token_file":"/t"}`},
		{"client false", "", ", ssl_verify: false", false, `"port":1,"ssl_verify":false}`, `"token_file":"/t","ssl_verify":false}`},
		{"client true", "", ", ssl_verify: true", true, `"port":1,"ssl_verify":true}`, `"token_file":"/t","ssl_verify":true}`},
		{"both false", ", ssl_verify: false", ", ssl_verify: false", false, `"port":1,"ssl_verify":false}`, `"token_file":"/t","ssl_verify":false}`},
		{"both true", ", ssl_verify: true", ", ssl_verify: true", true, `"port":1,"ssl_verify":true}`, `"token_file":"/t","ssl_verify":true}`},
		{"client null", "", ", ssl_verify: ", true, `"port":1}`, `"token_file":"/t"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustParse(t, fmt.Sprintf(k, tt.svc, tt.client))
			eq(t, c.Clusters[0].SSLVerify, tt.want)
			got := effectiveJSON(t, c)
			if !strings.Contains(got, tt.svcJSON+`,"client":{`+tt.clJSON) {
				t.Errorf("effective %s\nwant service ...%s and client {%s", got, tt.svcJSON, tt.clJSON)
			}
		})
	}
}

// label_selector takes apimachinery's numeric comparisons and sends them in
// canonical form.
func TestLabelSelectorGreaterLess(t *testing.T) {
	setEnv(t)
	c := mustParse(t, "discovery:\n  kubernetes:\n    label_selector: 'tier=web, gen > 3, gen<10'\n")
	eq(t, c.Clusters[0].Labels.String(), "gen>3,gen<10,tier=web")
	eq(t, c.Clusters[0].Labels.Matches(map[string]string{"tier": "web", "gen": "4"}), true)
	eq(t, c.Clusters[0].Labels.Matches(map[string]string{"tier": "web", "gen": "10"}), false)
}
