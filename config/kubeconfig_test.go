package config

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kdisc/kdisc/apiserver"
)

const (
	caPEM   = "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n"
	certPEM = "-----BEGIN CERTIFICATE-----\nCLIENT\n-----END CERTIFICATE-----\n"
	keyPEM  = "-----BEGIN EC PRIVATE KEY-----\nKEY\n-----END EC PRIVATE KEY-----\n"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// kubeconfigFile writes a kubeconfig into a fresh folder and returns its
// path.
func kubeconfigFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kube", "config")
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o700))
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return p
}

// a kubeconfig with three contexts: prod (token, CA file, path prefix,
// tls-server-name), dev (data fields, client certificate data) and exec
// (an exec plugin); current-context is dev.
const kubeconfigBody = `apiVersion: v1
kind: Config
current-context: dev
preferences: {}
clusters:
- name: prod-eu
  cluster:
    server: https://gw.example.com/k8s/clusters/c-1/
    certificate-authority: certs/ca.crt
    tls-server-name: kubernetes.internal
    extensions:
    - name: client.authentication.k8s.io/exec
      extension: {audience: kdisc}
- name: dev
  cluster:
    server: https://[fd00::1]:6443
    certificate-authority-data: ` + "CADATA" + `
- name: plain
  cluster:
    server: http://127.0.0.1:8080
    insecure-skip-tls-verify: true
contexts:
- name: prod
  context: {cluster: prod-eu, user: prod-admin, namespace: shop}
- name: dev
  context: {cluster: dev, user: dev-user}
- name: exec
  context: {cluster: prod-eu, user: exec-user}
- name: anonymous
  context: {cluster: plain}
users:
- name: prod-admin
  user:
    token: " s3cr3t-token\n"
    client-certificate: /etc/certs/client.crt
    client-key: ../keys/client.key
- name: dev-user
  user:
    client-certificate-data: CERTDATA
    client-key-data: KEYDATA
- name: exec-user
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: ./bin/get-token
      args: [--cluster, prod]
      env:
      - name: GET_TOKEN_SECRET
        value: hunter2
      interactiveMode: IfAvailable
      provideClusterInfo: true
      installHint: ask the platform team
`

// localJSON is EffectiveLocal as `kdisc check` encodes it, on one line.
func localJSON(t *testing.T, c *Config) string {
	t.Helper()
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	require.NoError(t, enc.Encode(c.EffectiveLocal()))
	return strings.TrimSuffix(b.String(), "\n")
}

func fullKubeconfig() string {
	return strings.NewReplacer("CADATA", b64(caPEM), "CERTDATA", b64(certPEM), "KEYDATA", b64(keyPEM)).Replace(kubeconfigBody)
}

func singleKubeconfig(path, extra string) string {
	return "discovery:\n  kubernetes:\n    kubeconfig: " + path + "\n" + extra
}

func TestKubeconfigCurrentContext(t *testing.T) {
	kc := kubeconfigFile(t, fullKubeconfig())
	c := mustParse(t, singleKubeconfig(kc, ""))
	k := c.Clusters[0]
	require.NotNil(t, k.Kubeconfig)
	eq(t, k.Kubeconfig.File, kc)
	eq(t, k.Kubeconfig.ContextName, "dev")
	eq(t, k.Kubeconfig.ClusterName, "dev")
	eq(t, k.Kubeconfig.UserName, "dev-user")
	eq(t, k.Service.Schema, "https")
	eq(t, k.Host, "fd00::1")
	eq(t, k.Port, 6443)
	eq(t, k.BaseURL(), "https://[fd00::1]:6443")
	eq(t, string(k.Kubeconfig.CAData), caPEM)
	eq(t, string(k.Kubeconfig.CertData), certPEM)
	eq(t, string(k.Kubeconfig.KeyData), keyPEM)
	eq(t, k.CAFile, "")
	eq(t, k.Token, "")
	eq(t, k.TokenFile, "" /* never the in-pod default */)
	eq(t, k.SSLVerify, true)
	eq(t, k.TableName(), "kubernetes")
	eq(t, k.DefaultWeight, 50)

	got := effectiveJSON(t, c)
	want := `{"kubeconfig":"` + kc + `","source":{"file":"` + kc + `","context":"dev","cluster":"dev","user":"dev-user","server":"https://[fd00::1]:6443","certificate-authority-data":"<redacted>","client-certificate-data":"<redacted>","client-key-data":"<redacted>"},"default_weight":50,"shared_size":"1m","watch_endpoint_slices":false,"content_type":"protobuf","terminating_fallback":true,"node_detail":false}`
	eq(t, got, want)
}

func TestKubeconfigContextKey(t *testing.T) {
	kc := kubeconfigFile(t, fullKubeconfig())
	dir := filepath.Dir(kc)
	t.Setenv("KDISC_TEST_KUBECONFIG", kc)
	t.Setenv("KDISC_TEST_CONTEXT", "prod")
	c := mustParse(t, singleKubeconfig("${KDISC_TEST_KUBECONFIG}", "    context: ${KDISC_TEST_CONTEXT}\n    default_weight: 7\n"))
	k := c.Clusters[0]
	eq(t, k.Kubeconfig.ContextName, "prod")
	eq(t, k.BaseURL(), "https://gw.example.com:443/k8s/clusters/c-1")
	eq(t, k.Port, 443)
	eq(t, k.Kubeconfig.PathPrefix, "/k8s/clusters/c-1")
	eq(t, k.Kubeconfig.TLSServerName, "kubernetes.internal")
	eq(t, k.CAFile, filepath.Join(dir, "certs", "ca.crt"))
	eq(t, k.CertFile, "/etc/certs/client.crt")
	eq(t, k.KeyFile, filepath.Join(filepath.Dir(dir), "keys", "client.key"))
	eq(t, k.Token, "s3cr3t-token")
	eq(t, k.DefaultWeight, 7)

	got := effectiveJSON(t, c)
	assert.NotContains(t, got, "s3cr3t")
	want := `{"kubeconfig":"${KDISC_TEST_KUBECONFIG}","context":"${KDISC_TEST_CONTEXT}","source":{"file":"` + kc + `","context":"prod","cluster":"prod-eu","user":"prod-admin","server":"https://gw.example.com/k8s/clusters/c-1/","certificate-authority":"` + k.CAFile + `","tls-server-name":"kubernetes.internal","token":"<redacted>","client-certificate":"/etc/certs/client.crt","client-key":"` + k.KeyFile + `","notes":["the context's namespace (shop) is ignored: kdisc watches the namespaces of namespace_selector"]},"default_weight":7,"shared_size":"1m","watch_endpoint_slices":false,"content_type":"protobuf","terminating_fallback":true,"node_detail":false}`
	eq(t, got, want)
}

func TestKubeconfigExec(t *testing.T) {
	kc := kubeconfigFile(t, fullKubeconfig())
	c := mustParse(t, singleKubeconfig(kc, "    context: exec\n"))
	k := c.Clusters[0]
	e := k.Kubeconfig.Exec
	require.NotNil(t, e)
	assert.Equal(t, apiserver.ExecConfig{
		APIVersion:         apiserver.ExecV1,
		Command:            filepath.Join(filepath.Dir(kc), "bin", "get-token"),
		Args:               []string{"--cluster", "prod"},
		Env:                []apiserver.ExecEnv{{Name: "GET_TOKEN_SECRET", Value: "hunter2"}},
		InteractiveMode:    "IfAvailable",
		InstallHint:        "ask the platform team",
		ProvideClusterInfo: true,
		Cluster: apiserver.ExecCluster{
			Server:        "https://gw.example.com/k8s/clusters/c-1/",
			TLSServerName: "kubernetes.internal",
			Config:        map[string]any{"audience": "kdisc"},
		},
	}, *e)
	eq(t, k.Token, "")
	eq(t, k.TokenFile, "")

	// The dump's config (over HTTP) redacts exec args and env values;
	// `kdisc check` (local) shows the args, never the env values.
	got := effectiveJSON(t, c)
	assert.NotContains(t, got, "hunter2")
	assert.NotContains(t, got, "prod\"]")
	assert.Contains(t, got, `"exec":{"apiVersion":"client.authentication.k8s.io/v1","command":"./bin/get-token","args":["<redacted>","<redacted>"],"env":[{"name":"GET_TOKEN_SECRET","value":"<redacted>"}],"interactiveMode":"IfAvailable","provideClusterInfo":true}`)
	local := localJSON(t, c)
	assert.NotContains(t, local, "hunter2")
	assert.Contains(t, local, `"exec":{"apiVersion":"client.authentication.k8s.io/v1","command":"./bin/get-token","args":["--cluster","prod"],"env":[{"name":"GET_TOKEN_SECRET","value":"<redacted>"}],"interactiveMode":"IfAvailable","provideClusterInfo":true}`)
	eq(t, strings.Replace(local, `"args":["--cluster","prod"]`, `"args":["<redacted>","<redacted>"]`, 1), got)
	assert.Equal(t, []string{"--cluster", "prod"}, k.Kubeconfig.Exec.Args) // redaction copies

	// A command without a slash is looked up in $PATH, as kubectl does.
	kc2 := kubeconfigFile(t, strings.Replace(fullKubeconfig(), "command: ./bin/get-token", "command: gke-gcloud-auth-plugin", 1))
	c = mustParse(t, singleKubeconfig(kc2, "    context: exec\n"))
	eq(t, c.Clusters[0].Kubeconfig.Exec.Command, "gke-gcloud-auth-plugin")
}

// A token (or token file, or client certificate) wins over exec, as in
// kubectl; the plugin is then never run.
func TestKubeconfigTokenWinsOverExec(t *testing.T) {
	kc := kubeconfigFile(t, `current-context: x
clusters: [{name: c, cluster: {server: "https://10.0.0.1"}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
users:
- name: u
  user:
    tokenFile: token
    exec: {apiVersion: client.authentication.k8s.io/v1beta1, command: get-token}
`)
	c := mustParse(t, singleKubeconfig(kc, ""))
	k := c.Clusters[0]
	eq(t, k.TokenFile, filepath.Join(filepath.Dir(kc), "token"))
	assert.Nil(t, k.Kubeconfig.Exec)
	assert.Contains(t, effectiveJSON(t, c), `"notes":["exec is not used: the user has a token or a client certificate, which kubectl uses instead"]`)
}

func TestKubeconfigTokenAndTokenFile(t *testing.T) {
	kc := kubeconfigFile(t, `current-context: x
clusters: [{name: c, cluster: {server: "https://10.0.0.1:6443"}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
users: [{name: u, user: {token: abc, tokenFile: /run/token}}]
`)
	k := mustParse(t, singleKubeconfig(kc, "")).Clusters[0]
	// client-go starts with token and re-reads tokenFile from then on; the
	// file is what stays current.
	eq(t, k.TokenFile, "/run/token")
	eq(t, k.Token, "")
}

func TestKubeconfigInsecureAndAnonymous(t *testing.T) {
	kc := kubeconfigFile(t, fullKubeconfig())
	c := mustParse(t, singleKubeconfig(kc, "    context: anonymous\n"))
	k := c.Clusters[0]
	eq(t, k.BaseURL(), "http://127.0.0.1:8080")
	eq(t, k.SSLVerify, false)
	eq(t, k.Token+k.TokenFile+k.CertFile, "")
	assert.Contains(t, effectiveJSON(t, c), `"cluster":"plain","server":"http://127.0.0.1:8080","insecure-skip-tls-verify":true}`)
}

func TestKubeconfigDefaultPorts(t *testing.T) {
	for server, want := range map[string]string{
		"https://api.example.com":         "https://api.example.com:443",
		"http://api.example.com":          "http://api.example.com:80",
		"https://10.0.0.1:6443/":          "https://10.0.0.1:6443",
		"https://[::1]/prefix":            "https://[::1]:443/prefix",
		"https://api.example.com:8443/a/": "https://api.example.com:8443/a",
	} {
		kc := kubeconfigFile(t, `current-context: x
clusters: [{name: c, cluster: {server: "`+server+`"}}]
contexts: [{name: x, context: {cluster: c}}]
`)
		eq(t, mustParse(t, singleKubeconfig(kc, "")).Clusters[0].BaseURL(), want)
	}
}

func TestKubeconfigMulti(t *testing.T) {
	kc := kubeconfigFile(t, fullKubeconfig())
	c := mustParse(t, `discovery:
  kubernetes:
  - id: prod
    kubeconfig: `+kc+`
    context: prod
  - id: dev
    kubeconfig: `+kc+`
  - id: incluster
    service: {host: 10.0.0.1, port: 443}
    client: {token: abc}
`)
	eq(t, c.Clusters[0].Kubeconfig.ContextName, "prod")
	eq(t, c.Clusters[1].Kubeconfig.ContextName, "dev")
	assert.Nil(t, c.Clusters[2].Kubeconfig)
	eq(t, c.Clusters[0].TableName(), "kubernetes-prod")
	got := effectiveJSON(t, c)
	assert.Contains(t, got, `{"id":"incluster","service":{"schema":"https","host":"10.0.0.1","port":443},"client":{"token":"<redacted>"},`)
	assert.Contains(t, got, `{"id":"prod","kubeconfig":"`+kc+`","context":"prod","source":{`)
}

func TestFromKubeconfig(t *testing.T) {
	kc := kubeconfigFile(t, fullKubeconfig())
	c, err := FromKubeconfig(kc, "")
	require.NoError(t, err)
	eq(t, c.Multi, false)
	eq(t, len(c.Clusters), 1)
	eq(t, c.Clusters[0].Kubeconfig.ContextName, "dev")
	eq(t, c.Clusters[0].SharedSizeBytes, int64(1<<20))
	assert.True(t, c.Clusters[0].Namespaces.Allows("any"))
	eq(t, c.Clusters[0].TableName(), "kubernetes")

	c, err = FromKubeconfig(kc, "prod")
	require.NoError(t, err)
	eq(t, c.Clusters[0].Kubeconfig.ContextName, "prod")

	_, err = FromKubeconfig(kc, "nope")
	wantErr(t, err, `-context: context "nope" is not in `+kc+` (it has: anonymous, dev, exec, prod)`)
	_, err = FromKubeconfig(filepath.Join(t.TempDir(), "missing"), "")
	wantErr(t, err, "-kubeconfig: reading the kubeconfig: open ")
}

func TestKubeconfigInvalid(t *testing.T) {
	good := fullKubeconfig()
	edit := func(old, new string) string {
		if !strings.Contains(good, old) {
			t.Fatalf("fixture has no %q", old)
		}
		return strings.Replace(good, old, new, 1)
	}
	const path = "discovery.kubernetes.kubeconfig: "
	tests := []struct {
		name, kubeconfig, extra, want string
	}{
		{"with service", good, "    service: {host: 10.0.0.1}\n", path + "must not be set together with discovery.kubernetes.service: the kubeconfig says where the apiserver is and how to authenticate"},
		{"with client", good, "    client: {token: abc}\n", path + "must not be set together with discovery.kubernetes.client"},
		{"bad yaml", "clusters: [", "", path + "KC: invalid YAML"},
		{"not a map", "- a\n- b\n", "", path + "KC: invalid kubeconfig"},
		{"no current-context", edit("current-context: dev", ""), "", path + "KC has no current-context: set discovery.kubernetes.context"},
		{"unknown context", good, "    context: staging\n", `discovery.kubernetes.context: context "staging" is not in KC (it has: anonymous, dev, exec, prod)`},
		{"context not a string", good, "    context: [a]\n", "discovery.kubernetes.context: must be a string (a context name of the kubeconfig)"},
		{"duplicate context", edit("- name: anonymous", "- name: dev"), "", path + `KC: contexts: duplicate name "dev"`},
		{"unknown cluster", edit("{cluster: dev, user: dev-user}", "{cluster: nope, user: dev-user}"), "", path + `KC: context "dev": cluster "nope" is not in the kubeconfig`},
		{"no cluster", edit("{cluster: dev, user: dev-user}", "{user: dev-user}"), "", path + `KC: context "dev": names no cluster`},
		{"unknown user", edit("{cluster: dev, user: dev-user}", "{cluster: dev, user: nope}"), "", path + `KC: context "dev": user "nope" is not in the kubeconfig`},
		{"no server", edit("server: https://[fd00::1]:6443", "server: ''"), "", path + `KC: cluster "dev": server is required`},
		{"server scheme", edit("server: https://[fd00::1]:6443", "server: ftp://x"), "", path + `KC: cluster "dev": server "ftp://x": the scheme must be http or https`},
		{"server query", edit("server: https://[fd00::1]:6443", "server: https://x/?a=b"), "", path + `KC: cluster "dev": server "https://x/?a=b": must not have a query or fragment`},
		{"server port", edit("server: https://[fd00::1]:6443", "server: https://x:0"), "", path + `KC: cluster "dev": server "https://x:0": port must be 1..65535`},
		{"server user", edit("server: https://[fd00::1]:6443", "server: https://me@x"), "", path + `KC: cluster "dev": server: must not hold a user name or password`},
		{"server ipv6 zone", edit("server: https://[fd00::1]:6443", "server: https://[fe80::1%25eth0]:6443"), "", path + `KC: cluster "dev": server "https://[fe80::1%25eth0]:6443": an IPv6 address with a zone (%eth0) is not supported`},
		{"server ipv6 zone unescaped", edit("server: https://[fd00::1]:6443", "server: https://[fe80::1%eth0]:6443"), "", path + `KC: cluster "dev": server "https://[fe80::1%eth0]:6443": an IPv6 address with a zone (%eth0) is not supported`},
		{"proxy-url", edit("    certificate-authority-data:", "    proxy-url: socks5://proxy:1080\n    certificate-authority-data:"), "", path + `KC: cluster "dev": proxy-url is not supported by kdisc`},
		{"auth-provider", edit("    client-certificate-data:", "    auth-provider: {name: oidc}\n    client-certificate-data:"), "", path + `KC: user "dev-user": auth-provider is not supported by kdisc (use an exec plugin, e.g. kubelogin, or a token)`},
		{"username", edit("    client-certificate-data:", "    username: admin\n    password: pw\n    client-certificate-data:"), "", path + `KC: user "dev-user": username/password (basic auth) is not supported by kdisc`},
		{"impersonation", edit("    client-certificate-data:", "    as: someone\n    client-certificate-data:"), "", path + `KC: user "dev-user": as (impersonation) is not supported by kdisc`},
		{"CA data and file", edit("    certificate-authority-data:", "    certificate-authority: ca.crt\n    certificate-authority-data:"), "", path + `KC: cluster "dev": certificate-authority and certificate-authority-data must not both be set`},
		{"insecure with CA", edit("    certificate-authority-data:", "    insecure-skip-tls-verify: true\n    certificate-authority-data:"), "", path + `KC: cluster "dev": insecure-skip-tls-verify must not be set with a certificate authority`},
		{"bad base64", edit("client-key-data: "+b64(keyPEM), "client-key-data: '!!notbase64'"), "", path + `KC: user "dev-user": client-key-data: not base64`},
		{"cert without key", edit("client-key-data: "+b64(keyPEM), ""), "", path + `KC: user "dev-user": client-certificate(-data) and client-key(-data) must be set together`},
		{"cert data and file", edit("    client-key-data:", "    client-certificate: c.crt\n    client-key-data:"), "", path + `KC: user "dev-user": client-certificate and client-certificate-data must not both be set`},
		{"exec Always", edit("interactiveMode: IfAvailable", "interactiveMode: Always"), "    context: exec\n", path + `KC: user "exec-user": exec: interactiveMode Always: kdisc never runs a plugin interactively`},
		{"exec v1alpha1", edit("apiVersion: client.authentication.k8s.io/v1\n", "apiVersion: client.authentication.k8s.io/v1alpha1\n"), "    context: exec\n", path + `KC: user "exec-user": exec: apiVersion "client.authentication.k8s.io/v1alpha1"`},
		{"exec v1 without mode", edit("      interactiveMode: IfAvailable\n", ""), "    context: exec\n", path + `KC: user "exec-user": exec: interactiveMode is required for client.authentication.k8s.io/v1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kc := kubeconfigFile(t, tt.kubeconfig)
			_, err := Parse([]byte(singleKubeconfig(kc, tt.extra)))
			wantErr(t, err, strings.ReplaceAll(tt.want, "KC", kc))
			var ce *Error
			require.ErrorAs(t, err, &ce)
			for _, secret := range []string{"s3cr3t", "hunter2", b64(keyPEM)} {
				assert.NotContains(t, err.Error(), secret)
			}
		})
	}

	// context without kubeconfig; a missing file; ${ENV} unset
	_, err := Parse([]byte("discovery:\n  kubernetes:\n    context: prod\n"))
	wantErr(t, err, "discovery.kubernetes.context: is only allowed with kubeconfig")
	_, err = Parse([]byte(singleKubeconfig(filepath.Join(t.TempDir(), "nope"), "")))
	wantErr(t, err, path+"reading the kubeconfig: open ")
	os.Unsetenv("KDISC_TEST_UNSET")
	_, err = Parse([]byte(singleKubeconfig("${KDISC_TEST_UNSET}", "")))
	wantErr(t, err, path+"environment variable KDISC_TEST_UNSET is not set")
	_, err = Parse([]byte("discovery:\n  kubernetes:\n    kubeconfig: 5\n"))
	wantErr(t, err, path+"must be a string (a kubeconfig file path)")
	_, err = Parse([]byte("discovery:\n  kubernetes:\n  - id: a\n    kubeconfig: /x\n    service: {host: h, port: 1}\n"))
	wantErr(t, err, "discovery.kubernetes[0].kubeconfig: must not be set together with discovery.kubernetes[0].service")
}

// kdisc never falls back to $KUBECONFIG or ~/.kube/config.
func TestKubeconfigNeverFromEnvironment(t *testing.T) {
	kc := kubeconfigFile(t, fullKubeconfig())
	t.Setenv("KUBECONFIG", kc)
	t.Setenv("HOME", filepath.Dir(filepath.Dir(kc)))
	setEnv(t)
	c := mustParse(t, "discovery:\n  kubernetes: {}\n")
	assert.Nil(t, c.Clusters[0].Kubeconfig)
	eq(t, c.Clusters[0].Host, "10.96.0.1")
}
