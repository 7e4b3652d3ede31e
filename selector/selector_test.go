package selector

import (
	"strconv"
	"strings"
	"testing"
)

func TestParseLabelsValid(t *testing.T) {
	long63 := strings.Repeat("a", 63)
	tests := []struct {
		in, want string
	}{
		{"", ""},
		{"   ", ""},
		{"a=b", "a=b"},
		{"a==b", "a=b"},
		{"a!=b", "a!=b"},
		{"a", "a"},
		{"!a", "!a"},
		{" ! a ", "!a"},
		{"a=", "a="},
		{"a=,b", "a=,b"},
		{"a!=", "a!="},
		{`first="a",second="b"`, "first=a,second=b"},
		{`first = "a" , second == "b"`, "first=a,second=b"},
		{`a=""`, "a="},
		{"a in (z,x,y)", "a in (x,y,z)"},
		{"a in (x,x)", "a in (x)"},
		{`a in ( "x" , y )`, "a in (x,y)"},
		{"a notin (b)", "a notin (b)"},
		{"a in ()", "a in ()"},
		{"a in (b,)", "a in (,b)"},
		// sorted by key, stable for repeated keys
		{"z=1,a=2,m,!b", "a=2,!b,m,z=1"},
		{"a=2,a=1", "a=2,a=1"},
		{"app.kubernetes.io/name=web", "app.kubernetes.io/name=web"},
		{"example.com/A_b.c-d=X.y_z-1", "example.com/A_b.c-d=X.y_z-1"},
		{long63 + "=" + long63, long63 + "=" + long63},
		{"in=notin", "in=notin"}, // keywords are fine as keys and values
		{"a\tin\n(b)", "a in (b)"},
		// numeric comparisons, written as apimachinery's String() writes them
		{"a>1", "a>1"},
		{"a < 10", "a<10"},
		{`a>"5"`, "a>5"},
		{"a>007", "a>007"}, // as written: the apiserver compares numbers
		{"a>0", "a>0"},
		{"b>1,a<2,a>0", "a<2,a>0,b>1"},
		{"a>9223372036854775807", "a>9223372036854775807"},
		{"example.com/gen<3", "example.com/gen<3"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			l, err := ParseLabels(tt.in)
			if err != nil {
				t.Fatalf("ParseLabels(%q): %v", tt.in, err)
			}
			if got := l.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
			if l.Empty() != (tt.want == "") {
				t.Errorf("Empty() = %v", l.Empty())
			}
			// The canonical form parses back to itself.
			l2, err := ParseLabels(l.String())
			if err != nil || l2.String() != l.String() {
				t.Errorf("reparse of %q: %q, %v", l.String(), l2.String(), err)
			}
		})
	}
}

func TestParseLabelsInvalid(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{",", `at column 1: expected a label key, found ","`},
		{"a=b,", "at column 5: expected a label key, found end of selector"},
		{"a=b,,c", `at column 5: expected a label key, found ","`},
		{"!", "expected a label key, found end of selector"},
		{"!a=b", `at column 3: expected ',' or end of selector, found "="`},
		{"a b", `after key "a", found "b"`},
		{"a=b c", `at column 5: expected ',' or end of selector, found "c"`},
		{"a=b=c", `found "="`},
		{"a in b", `expected '(' after in/notin, found "b"`},
		{"a in (b c)", `expected ',' or ')' in value list, found "c"`},
		{"a in (b", "expected ',' or ')' in value list, found end of selector"},
		{"a=(b)", `expected a value, found "("`},
		{"a>b", `value "b": for > and <, the value must be an integer`},
		{"a<1.5", `value "1.5": for > and <, the value must be an integer`},
		{"a>", `value "": for > and <, the value must be an integer`},
		{"a>,b", `value "": for > and <, the value must be an integer`},
		{"a>9223372036854775808", `value "9223372036854775808": for > and <, the value must be an integer`},
		{"a>-1", `value "-1": value must consist`}, // an integer, but not a label value
		{"a>+1", `value "+1": value must consist`},
		{"a>=1", `expected a value, found "="`},
		{"a>>1", `expected a value, found ">"`},
		{"a<(1)", `expected a value, found "("`},
		{"a in (1>2)", `expected ',' or ')' in value list, found ">"`},
		{`a="b`, `unterminated quoted value "b`},
		{`"a"=b`, `expected a label key, found quoted "a"`},
		{"-a=b", `key "-a": name part must consist of alphanumeric characters`},
		{"a-=b", `key "a-": name part must consist`},
		{"a=b-", `value "b-": value must consist`},
		{"a=b/c", `value "b/c": value must consist`},
		{"/a=b", `key "/a": prefix before '/' must not be empty`},
		{"Example.com/a=b", `prefix must be a DNS subdomain`},
		{"a/b/c=d", `key "a/b/c": name part must consist`},
		{"a/=b", `key "a/": name part must not be empty`},
		{strings.Repeat("k", 64) + "=v", "name part must be at most 63 characters"},
		{"k=" + strings.Repeat("v", 64), "value must be at most 63 characters"},
		{"k in (a,b$)", `value "b$": value must consist`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := ParseLabels(tt.in)
			wantErr(t, err, tt.want)
			wantErr(t, err, "invalid label selector "+strconv.Quote(tt.in)+": at column ")
		})
	}
}

func TestLabelsMatches(t *testing.T) {
	lbls := map[string]string{"app": "web", "tier": "front", "empty": "", "num": "10", "big": "99999999999999999999"}
	tests := []struct {
		sel  string
		want bool
	}{
		{"", true},
		{"app=web", true},
		{"app=db", false},
		{"app!=db", true},
		{"app!=web", false},
		{"missing!=x", true}, // != matches an absent key, as the apiserver does
		{"app in (db,web)", true},
		{"app in (db)", false},
		{"missing in (x)", false},
		{"app notin (db)", true},
		{"app notin (web)", false},
		{"missing notin (x)", true},
		{"app", true},
		{"missing", false},
		{"!missing", true},
		{"!app", false},
		{"empty=", true},
		{"empty", true},
		{"app=web,tier=front", true},
		{"app=web,tier=back", false},
		{`app="web"`, true},
		{"num>5", true},
		{"num>10", false},
		{"num<11", true},
		{"num<10", false},
		{"app>1", false},     // not an integer: no match, as the apiserver
		{"missing<1", false}, // absent key: no match
		{"missing>1", false},
		{"big<9223372036854775807", false},
	}
	for _, tt := range tests {
		t.Run(tt.sel, func(t *testing.T) {
			l, err := ParseLabels(tt.sel)
			if err != nil {
				t.Fatal(err)
			}
			if got := l.Matches(lbls); got != tt.want {
				t.Errorf("Matches = %v, want %v", got, tt.want)
			}
		})
	}
	if !(Labels{}).Matches(nil) {
		t.Error("empty selector must match nil labels")
	}
}

func TestNamespace(t *testing.T) {
	type probe struct {
		ns   string
		want bool
	}
	tests := []struct {
		name            string
		equal, notEqual string
		match, notMatch []string
		field           string
		probes          []probe
	}{
		{name: "none", probes: []probe{{"default", true}, {"x", true}}},
		{name: "equal", equal: "default", field: "metadata.namespace=default",
			probes: []probe{{"default", true}, {"default2", false}, {"kube-system", false}}},
		{name: "not_equal", notEqual: "default", field: "metadata.namespace!=default",
			probes: []probe{{"default", false}, {"default2", true}}},
		{name: "match anchored", match: []string{"default", "^my-[a-z]+$"},
			probes: []probe{{"default", true}, {"default2", false}, {"xdefault", false},
				{"my-app", true}, {"my-app1", false}, {"kube-system", false}}},
		{name: "match alternation stays anchored", match: []string{"a|b"},
			probes: []probe{{"a", true}, {"b", true}, {"ab", false}, {"xa", false}}},
		{name: "match prefix needs .*", match: []string{"team-.*"},
			probes: []probe{{"team-a", true}, {"team-", true}, {"my-team-a", false}}},
		{name: "not_match", notMatch: []string{"default", "^my-[a-z]+$"},
			probes: []probe{{"default", false}, {"default2", true}, {"my-app", false}, {"kube-system", true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := NewNamespace(tt.equal, tt.notEqual, tt.match, tt.notMatch)
			if err != nil {
				t.Fatal(err)
			}
			if got := n.FieldSelector(); got != tt.field {
				t.Errorf("FieldSelector() = %q, want %q", got, tt.field)
			}
			for _, p := range tt.probes {
				if got := n.Allows(p.ns); got != p.want {
					t.Errorf("Allows(%q) = %v, want %v", p.ns, got, p.want)
				}
			}
		})
	}
}

func TestNamespaceNil(t *testing.T) {
	var n *Namespace
	if n.FieldSelector() != "" || !n.Allows("anything") || !(&Namespace{}).Allows("anything") {
		t.Error("a nil or zero Namespace must allow everything and have no field selector")
	}
}

func TestNamespaceInvalid(t *testing.T) {
	tests := []struct {
		name            string
		equal, notEqual string
		match, notMatch []string
		want            string
	}{
		{name: "two keys", equal: "a", match: []string{"b"}, want: "at most one of equal, not_equal, match, not_match"},
		{name: "equal and not_equal", equal: "a", notEqual: "b", want: "at most one of"},
		{name: "bad regex", match: []string{"ok", "a("}, want: "match[1]: invalid regular expression \"a(\": error parsing regexp: missing closing ): `a(`"},
		{name: "bad not_match regex", notMatch: []string{"[z-a]"}, want: `not_match[0]: invalid regular expression "[z-a]"`},
		// Found by FuzzNamespace: compiled only inside the ^(?:...)$ wrapper,
		// ")(" became "^(?:)()$" (matches "") and "a)|(.*" became
		// "^(?:a)|(.*)$", which matches every name.
		{name: "parentheses only the anchoring balances", match: []string{")("}, want: "match[0]: invalid regular expression \")(\": error parsing regexp: unexpected ): `)(`"},
		{name: "regex escaping the anchors", notMatch: []string{"kube-.*", "a)|(.*"}, want: `not_match[1]: invalid regular expression "a)|(.*": error parsing regexp: unexpected )`},
		{name: "empty list", match: []string{}, want: "match: must be a non-empty list"},
		{name: "empty regex", notMatch: []string{""}, want: "not_match[0]: must be a non-empty regular expression"},
		{name: "equal not a name", equal: "a,b", want: `equal: "a,b" is not a valid namespace name`},
		{name: "not_equal uppercase", notEqual: "Default", want: `not_equal: "Default" is not a valid namespace name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewNamespace(tt.equal, tt.notEqual, tt.match, tt.notMatch)
			wantErr(t, err, tt.want)
		})
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
