package config

import (
	"strings"
	"testing"
)

// content_type (Wire format): protobuf by default, json on request, shown
// in the effective configuration; anything else names the key and rule.
func TestContentType(t *testing.T) {
	const k = "discovery:\n  kubernetes:\n    service: {host: 10.0.0.1, port: 6443}\n    client: {token: t}\n"
	for _, c := range []struct{ yaml, want string }{
		{k, ContentTypeProtobuf},
		{k + "    content_type: protobuf\n", ContentTypeProtobuf},
		{k + "    content_type: json\n", ContentTypeJSON},
		{k + "    content_type:\n", ContentTypeProtobuf}, // null: absent
	} {
		cfg, err := Parse([]byte(c.yaml))
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.Clusters[0].ContentType; got != c.want {
			t.Errorf("%q: content type %q, want %q", c.yaml, got, c.want)
		}
		if s := effectiveJSON(t, cfg); !strings.Contains(s, `"content_type":"`+c.want+`"`) {
			t.Errorf("effective configuration without content_type %q: %s", c.want, s)
		}
	}
	for _, bad := range []string{"xml", "JSON", "application/json", "1", "true"} {
		_, err := Parse([]byte(k + "    content_type: " + bad + "\n"))
		if err == nil || err.Error() != "discovery.kubernetes.content_type: must be protobuf or json" {
			t.Errorf("content_type %s: %v", bad, err)
		}
	}
}
