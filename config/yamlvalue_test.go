package config

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
)

// yamlCorners are documents where goccy's tree-to-values rules show:
// scalars of every kind, tags, anchors, aliases (including goccy's quirk of
// an alias read as null inside an enclosing anchor), merge keys, several
// documents, flow style, and errors.
var yamlCorners = []string{
	"", "---\n", "~", "null", "a", "1", "-1", "0x1f", "0o17", "1.5", "1e3", ".inf", "-.inf", ".nan", "true", "no", "yes",
	"'quoted'", `"esc\ttab\u00e9"`, "a: 1\nb: -2\nc: 18446744073709551615\nd: 9223372036854775808\ne: 1_000\n",
	"a: |\n  line1\n  line2\nb: >-\n  folded\n  text\n",
	"a: !!str 1\nb: !!int \"2\"\nc: !!float 3\nd: !!bool yes\ne: !!null x\nf: !!binary aGVsbG8=\ng: !!timestamp 2001-12-14\nh: !!str\ni: !!bool maybe\n",
	"a: !!timestamp 2001-12-14t21:59:43.10-05:00\nb: !!timestamp nope\nc: !custom x\nd: !!map {x: 1}\ne: !!seq [1]\nf: !!float nope\n",
	"base: &b {x: 1, y: 2}\nderived:\n  <<: *b\n  y: 3\n",
	"a: &a 1\nb: *a\nc: &c [1, *a]\nd: *c\n",
	"a: &x {b: &y 1, c: *y}\nd: *y\n",
	"a: &x\n  b: *x\n",
	"l1: &l1 {a: 1}\nl2: &l2 {b: 2}\nm:\n  <<: [*l1, *l2]\n  c: 3\n",
	"m:\n  <<: 1\n", "m:\n  <<: *nope\n", "a: *nope\n", "m:\n  <<: [1]\n",
	"a: 1\n---\nb: 2\n", "---\n~\n---\nb: 2\n", "---\n---\nb: 2\n", "a: 1\n---\nb: *nope\n",
	"{a: [1, {b: c}], 1: x, null: y, true: z, 1.5: w, [k]: v}", "[a, b, [c, d]]",
	"? complex\n: value\n", "key: value # comment\n# only comment\n",
	"a: 1\na: 2\n", "a: [1, 2\n", "a:\n\t- tab\n", "- a\nb: c\n", "a: b: c\n", "%YAML 1.2\n---\na: 1\n",
	"%TAG !e! tag:example.com,2000:\n---\na: !e!foo 1\n",
	"discovery:\n  kubernetes:\n    service: {host: h, port: 6443}\n    client: {token: t}\n",
}

func yamlCorpus(t testing.TB) []string {
	docs := append([]string{}, yamlCorners...)
	for _, glob := range []string{"../testdata/config/*.yaml", "../testdata/cli/*.yaml", "../testdata/kube/*.yaml", "../deploy/*.yaml", "../deploy/*/*.yaml"} {
		files, err := filepath.Glob(glob)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			docs = append(docs, string(b))
		}
	}
	docs = append(docs, fullKubeconfig())
	return docs
}

// goccyValue is what config read before unmarshalYAML: yaml.Unmarshal into
// an any and yaml.FormatError(err, false, false).
func goccyValue(data []byte) (any, string) {
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return nil, yaml.FormatError(err, false, false)
	}
	return v, ""
}

func checkSameAsGoccy(t *testing.T, doc string) {
	t.Helper()
	want, wantErr := goccyValue([]byte(doc))
	got, err := unmarshalYAML([]byte(doc))
	gotErr := ""
	if err != nil {
		gotErr = formatYAMLError(err)
	}
	if gotErr != wantErr {
		t.Fatalf("error for %q:\n got %q\nwant %q", doc, gotErr, wantErr)
	}
	// %#v as well: NaN is not DeepEqual to itself (fmt sorts map keys).
	if !reflect.DeepEqual(got, want) && fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", want) {
		t.Fatalf("value for %q:\n got %#v\nwant %#v", doc, got, want)
	}
}

func TestYAMLValueMatchesGoccy(t *testing.T) {
	for _, doc := range yamlCorpus(t) {
		checkSameAsGoccy(t, doc)
	}
}

func FuzzYAMLValueMatchesGoccy(f *testing.F) {
	for _, doc := range yamlCorpus(f) {
		f.Add(doc)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		if strings.Count(doc, "*") > 8 || len(doc) > 4096 {
			t.Skip() // alias bombs: slow in both, not what this checks
		}
		checkSameAsGoccy(t, doc)
	})
}

// goccyKubeconfig is the struct config decoded kubeconfigs into with
// yaml.Unmarshal before decodeKubeconfig; same field names as kcFile.
type goccyKubeconfig struct {
	CurrentContext string `yaml:"current-context"`
	Clusters       []struct {
		Name    string `yaml:"name"`
		Cluster *struct {
			Server                   string `yaml:"server"`
			TLSServerName            string `yaml:"tls-server-name"`
			InsecureSkipTLSVerify    bool   `yaml:"insecure-skip-tls-verify"`
			CertificateAuthority     string `yaml:"certificate-authority"`
			CertificateAuthorityData string `yaml:"certificate-authority-data"`
			ProxyURL                 string `yaml:"proxy-url"`
			Extensions               []struct {
				Name      string `yaml:"name"`
				Extension any    `yaml:"extension"`
			} `yaml:"extensions"`
		} `yaml:"cluster"`
	} `yaml:"clusters"`
	Contexts []struct {
		Name    string `yaml:"name"`
		Context *struct {
			Cluster   string `yaml:"cluster"`
			User      string `yaml:"user"`
			Namespace string `yaml:"namespace"`
		} `yaml:"context"`
	} `yaml:"contexts"`
	Users []struct {
		Name string `yaml:"name"`
		User *struct {
			Token                 string `yaml:"token"`
			TokenFile             string `yaml:"tokenFile"`
			ClientCertificate     string `yaml:"client-certificate"`
			ClientCertificateData string `yaml:"client-certificate-data"`
			ClientKey             string `yaml:"client-key"`
			ClientKeyData         string `yaml:"client-key-data"`
			Exec                  *struct {
				APIVersion string   `yaml:"apiVersion"`
				Command    string   `yaml:"command"`
				Args       []string `yaml:"args"`
				Env        []struct {
					Name  string `yaml:"name"`
					Value string `yaml:"value"`
				} `yaml:"env"`
				InstallHint        string `yaml:"installHint"`
				ProvideClusterInfo bool   `yaml:"provideClusterInfo"`
				InteractiveMode    string `yaml:"interactiveMode"`
			} `yaml:"exec"`
			AuthProvider any            `yaml:"auth-provider"`
			Username     string         `yaml:"username"`
			Password     string         `yaml:"password"`
			As           string         `yaml:"as"`
			AsUID        string         `yaml:"as-uid"`
			AsGroups     []string       `yaml:"as-groups"`
			AsUserExtra  map[string]any `yaml:"as-user-extra"`
		} `yaml:"user"`
	} `yaml:"users"`
}

// Valid kubeconfigs decode to the same structs as goccy's struct decoder
// gave (compared as JSON: the field names are the same); a value of the
// wrong shape is refused by both.
func TestDecodeKubeconfigMatchesGoccy(t *testing.T) {
	docs := []string{
		fullKubeconfig(),
		"current-context: x\nclusters: [{name: c, cluster: {server: \"https://10.0.0.1\"}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\nusers:\n- name: u\n  user:\n    tokenFile: token\n    exec: {apiVersion: v1, command: get-token, args: [a, 1, true], env: [{name: A, value: 2}, ~], provideClusterInfo: true}\n",
		"clusters: [~, {name: 1}, {name: c, cluster: ~}, {name: d, cluster: {}}]\nusers: [{name: u, user: {auth-provider: {name: oidc}, as-groups: [a, b], as-user-extra: {k: [v]}, username: 5, password: 1.5}}]\n",
		"current-context: 7\ncontexts: [{name: true, context: {cluster: 1.0, namespace: ~}}]\n",
		"defaults: &d {server: https://a}\nclusters:\n- name: c\n  cluster:\n    <<: *d\n    tls-server-name: n\n",
	}
	for _, doc := range docs {
		var want goccyKubeconfig
		if err := yaml.Unmarshal([]byte(doc), &want); err != nil {
			t.Fatalf("goccy on %q: %v", doc, err)
		}
		v, err := unmarshalYAML([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeKubeconfig(v.(map[string]any))
		if err != nil {
			t.Fatalf("decodeKubeconfig(%q): %v", doc, err)
		}
		wj, _ := json.Marshal(want)
		gj, _ := json.Marshal(got)
		if string(wj) != string(gj) {
			t.Fatalf("kubeconfig %q:\n got %s\nwant %s", doc, gj, wj)
		}
	}
	for _, doc := range []string{
		"clusters: {a: b}\n", "clusters: [a]\n", "clusters: [{cluster: [x]}]\n", "clusters: [{cluster: {server: [x]}}]\n",
		"clusters: [{cluster: {insecure-skip-tls-verify: \"true\"}}]\n", "users: [{user: {exec: 1}}]\n",
		"users: [{user: {as-groups: a}}]\n", "users: [{user: {as-user-extra: [a]}}]\n", "contexts: [{context: {user: {a: b}}}]\n",
	} {
		var want goccyKubeconfig
		if err := yaml.Unmarshal([]byte(doc), &want); err == nil {
			t.Fatalf("goccy accepted %q", doc)
		}
		v, err := unmarshalYAML([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := decodeKubeconfig(v.(map[string]any)); err == nil {
			t.Fatalf("decodeKubeconfig accepted %q", doc)
		}
	}
}
