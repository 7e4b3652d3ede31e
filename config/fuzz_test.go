package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParse feeds whole YAML files to Parse. Properties:
//   - it never panics;
//   - an error names a key path: a *Error whose text starts with its Path
//     (a path under discovery.kubernetes, or "config"/"discovery" for the
//     shape of the document), or the YAML syntax error;
//   - an accepted configuration is coherent (what the rest of kdisc relies
//     on: a port in range, a table size in range, a namespace filter) and
//     re-validates: its effective configuration, written back as the
//     discovery.kubernetes section of a file, parses again to the same
//     effective configuration.
//
// Seeds: every file in testdata/config and testdata/cli, and the snippets
// below.
func FuzzParse(f *testing.F) {
	for k, v := range map[string]string{
		"KUBERNETES_SERVICE_HOST": "10.96.0.1",
		"KUBERNETES_SERVICE_PORT": "443",
		"KDISC_TEST_TOKEN":        "tok-123",
		"KDISC_TEST_DOMAIN":       "example.com",
		"KDISC_TEST_PORT":         "16443",
		"KDISC_TEST_TOKEN_DIR":    "/run/kdisc",
	} {
		f.Setenv(k, v)
	}
	for _, glob := range []string{"../testdata/config/*.yaml", "../testdata/cli/*.yaml"} {
		files, err := filepath.Glob(glob)
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	const k = "discovery:\n  kubernetes:\n"
	for _, s := range []string{
		"",
		k,
		"discovery:\n  kubernetes: {}\n",
		"discovery:\n  kubernetes: []\n",
		k + "    service: {host: '::1', port: '${KDISC_TEST_PORT}', ssl_verify: false}\n    client: {token: ' x ', ssl_verify: false}\n",
		k + "    namespace_selector: {}\n    label_selector: 'a in (x,y), b>1, !c'\n    shared_size: 16384\n",
		k + "    namespace_selector: {match: ['a|b', '^my-[a-z]+$']}\n",
		k + "    service: {host: 'api.${{KDISC_UNSET:=x}}', port: 1}\n",
		k + "  - id: a\n    service: {host: h, port: 1}\n    client: {token_file: /t, cert_file: /c, key_file: /k}\n    default_weight: 0\n",
		k + "  - id: a\n    service: {host: h, port: 1}\n    client: {token: t}\n  - id: a\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err != nil {
			checkErrorNamesKeyPath(t, err)
			return
		}
		checkCoherent(t, cfg)
		eff, err := cfg.EffectiveJSON()
		if err != nil {
			t.Fatalf("EffectiveJSON: %v", err)
		}
		// encoding/json shows invalid UTF-8 (possible in a file path) as
		// U+FFFD: the display is lossy there by design.
		if !utf8.Valid(data) {
			return
		}
		again, err := Parse([]byte("discovery:\n  kubernetes: " + string(eff) + "\n"))
		if err != nil {
			t.Fatalf("the effective configuration does not re-validate: %v\neffective: %s", err, eff)
		}
		eff2, err := again.EffectiveJSON()
		if err != nil {
			t.Fatal(err)
		}
		if string(eff2) != string(eff) {
			t.Fatalf("effective configuration changed when parsed again:\n first %s\nsecond %s", eff, eff2)
		}
	})
}

func checkErrorNamesKeyPath(t *testing.T, err error) {
	t.Helper()
	msg := err.Error()
	var ce *Error
	if !errors.As(err, &ce) {
		if !strings.HasPrefix(msg, "config: invalid YAML: ") {
			t.Fatalf("error is neither a *config.Error nor a YAML syntax error: %q", msg)
		}
		return
	}
	if ce.Path != "config" && ce.Path != "discovery" && !strings.HasPrefix(ce.Path, root) {
		t.Fatalf("error path %q is not a key path: %q", ce.Path, msg)
	}
	if !strings.HasPrefix(msg, ce.Path+": ") || ce.Msg == "" {
		t.Fatalf("error %q does not start with its key path %q and say why", msg, ce.Path)
	}
}

func checkCoherent(t *testing.T, cfg *Config) {
	t.Helper()
	if len(cfg.Clusters) == 0 || (!cfg.Multi && len(cfg.Clusters) != 1) {
		t.Fatalf("%d clusters (multi %v)", len(cfg.Clusters), cfg.Multi)
	}
	ids := map[string]bool{}
	for i := range cfg.Clusters {
		c := &cfg.Clusters[i]
		if ids[c.ID] {
			t.Fatalf("duplicate id %q", c.ID)
		}
		ids[c.ID] = true
		if cfg.Multi != (c.ID != "") {
			t.Fatalf("cluster %d: id %q in multi %v", i, c.ID, cfg.Multi)
		}
		if c.Port < 1 || c.Port > 65535 || c.Host == "" {
			t.Fatalf("cluster %d: host %q port %d", i, c.Host, c.Port)
		}
		if c.SharedSizeBytes < minSharedSize || c.SharedSizeBytes > maxSharedSize {
			t.Fatalf("cluster %d: shared size %d", i, c.SharedSizeBytes)
		}
		if c.Namespaces == nil || c.DefaultWeight < 0 {
			t.Fatalf("cluster %d: namespaces %v weight %d", i, c.Namespaces, c.DefaultWeight)
		}
		if c.Service.Schema != "http" && c.Service.Schema != "https" {
			t.Fatalf("cluster %d: schema %q", i, c.Service.Schema)
		}
		if c.Token != "" && c.TokenFile != "" {
			t.Fatalf("cluster %d: token and token file", i)
		}
		if (c.CertFile == "") != (c.KeyFile == "") {
			t.Fatalf("cluster %d: cert %q key %q", i, c.CertFile, c.KeyFile)
		}
		if c.Token == "" && c.TokenFile == "" && c.CertFile == "" {
			t.Fatalf("cluster %d: no credential", i)
		}
		if c.LabelSelector == "" != c.Labels.Empty() && strings.TrimSpace(c.LabelSelector) != "" {
			t.Fatalf("cluster %d: label selector %q parsed as %q", i, c.LabelSelector, c.Labels.String())
		}
	}
}
