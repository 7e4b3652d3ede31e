package selector

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// labelSeeds returns the label_selector values of the configuration
// fixtures (the rest of a line after "label_selector:", unquoted).
func labelSeeds(f *testing.F) []string {
	var out []string
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
			lines := strings.Split(string(b), "\n")
			for i, line := range lines {
				_, v, ok := strings.Cut(line, "label_selector:")
				if !ok {
					continue
				}
				v = strings.TrimSpace(v)
				if v == "|-" || v == "|" || v == ">-" { // block scalar: the next line
					if i+1 < len(lines) {
						out = append(out, strings.TrimSpace(lines[i+1]))
					}
					continue
				}
				if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
					v = v[1 : len(v)-1]
				}
				out = append(out, v)
			}
		}
	}
	return out
}

// FuzzParseLabels: ParseLabels never panics, refuses with an "invalid
// label selector" message, and a parsed selector's canonical String()
// parses again to the same String() and the same matching.
func FuzzParseLabels(f *testing.F) {
	seeds := append(labelSeeds(f),
		"", "a=b", "a==b", "a!=b", "a", "!a", "a=", `first="a", second="b"`,
		"a in (z,x,y)", "a notin (b)", "a in ()", "a in (b,)", "z=1,a=2,m,!b",
		"app.kubernetes.io/name=web", "a>1", "a < 10", `a>"5"`, "a>007",
		"a>9223372036854775807", "a>-1", "a>=1", `a="b`, "a\tin\n(b)",
	)
	for _, s := range seeds {
		f.Add(s, "app=web,tier=front,empty=,a=5,b=x")
	}
	f.Fuzz(func(t *testing.T, sel, labels string) {
		l, err := ParseLabels(sel)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "invalid label selector ") {
				t.Fatalf("error without the usual prefix: %v", err)
			}
			return
		}
		canon := l.String()
		if l.Empty() != (canon == "") {
			t.Fatalf("Empty() = %v, String() = %q", l.Empty(), canon)
		}
		l2, err := ParseLabels(canon)
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", canon, sel, err)
		}
		if got := l2.String(); got != canon {
			t.Fatalf("canonical form of %q is not stable: %q then %q", sel, canon, got)
		}
		m := map[string]string{}
		for _, kv := range strings.Split(labels, ",") {
			k, v, _ := strings.Cut(kv, "=")
			m[k] = v
		}
		if l.Matches(m) != l2.Matches(m) {
			t.Fatalf("%q and its canonical form %q disagree on %v", sel, canon, m)
		}
	})
}

// FuzzNamespace: NewNamespace never panics, and a namespace filter it
// accepts allows exactly what its rule says, checked against an oracle
// that does not share its implementation: equal/not_equal compare text;
// each match/not_match regular expression, compiled as the user wrote it
// (leftmost-longest), must match the whole namespace name.
func FuzzNamespace(f *testing.F) {
	for _, s := range []struct {
		kind     uint8
		a, b, ns string
	}{
		{0, "default", "", "default"},
		{1, "default", "", "default2"},
		{2, "default", "^my-[a-z]+$", "my-app"},
		{2, "a|b", "team-.*", "ab"},
		{3, "kube-.*", "default", "kube-system"},
		{3, "[z-a]", "", "x"},
		{2, "(?i)DEFAULT", "", "default"},
		{2, "a$", "", "a"},
		{4, "", "", "anything"},
	} {
		f.Add(s.kind, s.a, s.b, s.ns)
	}
	f.Fuzz(func(t *testing.T, kind uint8, a, b, ns string) {
		var equal, notEqual string
		var match, notMatch []string
		res := []string{a}
		if b != "" {
			res = append(res, b)
		}
		rule := kind % 5
		if a == "" && rule < 2 {
			rule = 4 // "" is "not set" for equal and not_equal
		}
		switch rule {
		case 0:
			equal = a
		case 1:
			notEqual = a
		case 2:
			match = res
		case 3:
			notMatch = res
		} // 4: no rule
		n, err := NewNamespace(equal, notEqual, match, notMatch)
		if err != nil {
			return
		}
		want := true
		switch rule {
		case 0:
			want = ns == a
		case 1:
			want = ns != a
		case 2:
			want = wholeMatchAny(t, res, ns)
		case 3:
			want = !wholeMatchAny(t, res, ns)
		}
		if got := n.Allows(ns); got != want {
			t.Fatalf("rule %d %q: Allows(%q) = %v, want %v", rule, res, ns, got, want)
		}
		field := n.FieldSelector()
		switch rule {
		case 0:
			want := "metadata.namespace=" + a
			if field != want {
				t.Fatalf("FieldSelector() = %q, want %q", field, want)
			}
		case 1:
			want := "metadata.namespace!=" + a
			if field != want {
				t.Fatalf("FieldSelector() = %q, want %q", field, want)
			}
		default:
			if field != "" {
				t.Fatalf("FieldSelector() = %q, want none", field)
			}
		}
	})
}

// wholeMatchAny reports whether one of res matches all of s. A regular
// expression NewNamespace accepted must compile as written.
func wholeMatchAny(t *testing.T, res []string, s string) bool {
	t.Helper()
	for _, re := range res {
		c, err := regexp.Compile(re)
		if err != nil {
			t.Fatalf("NewNamespace accepted %q, which is not a regular expression: %v", re, err)
		}
		c.Longest()
		if loc := c.FindStringIndex(s); loc != nil && loc[0] == 0 && loc[1] == len(s) {
			return true
		}
	}
	return false
}
