// Package selector holds the two filters a kdisc cluster applies to what it
// watches: which namespaces to keep (namespace_selector) and which labels an
// Endpoints/EndpointSlice object must carry (label_selector).
//
// Both are built once from the configuration and then only read, so their
// methods are safe for concurrent use.
//
// A Namespace selector is partly pushed to the apiserver (equal and
// not_equal become a fieldSelector) and partly applied by kdisc (match and
// not_match are regular expressions, which the apiserver cannot evaluate):
//
//	ns, err := selector.NewNamespace("", "", []string{"default", "^my-[a-z]+$"}, nil)
//	ns.FieldSelector()  // "" — nothing the apiserver can filter on
//	ns.Allows("my-app") // true
//	ns.Allows("default2") // false: each regex must match the whole name
//
// A Labels selector is Kubernetes label selector syntax, parsed and
// validated here so that a typo is refused at start rather than by the
// apiserver at the first LIST, and re-written in canonical form for the
// labelSelector query parameter:
//
//	l, err := selector.ParseLabels(`first="a", second="b"`)
//	l.String() // "first=a,second=b"
package selector

import (
	"fmt"
	"regexp"
)

// Namespace decides which namespaces a cluster keeps. The zero value and a
// nil *Namespace keep every namespace.
type Namespace struct {
	equal    string
	notEqual string
	match    []*regexp.Regexp
	notMatch []*regexp.Regexp
}

// NewNamespace builds a namespace filter from the four namespace_selector
// keys, of which at most one may be set (empty string / nil slice = unset).
// equal and not_equal must be valid namespace names (they are sent to the
// apiserver inside a field selector). Each match / not_match entry is a
// regular expression (RE2 syntax) that must match the whole namespace name:
// it is compiled as ^(?:re)$, so "default" does not match "default2".
//
// An error about one key starts with that key ("match[1]: invalid regular
// expression ..."), so callers can prefix their own key path.
func NewNamespace(equal, notEqual string, match, notMatch []string) (*Namespace, error) {
	set := 0
	for _, b := range []bool{equal != "", notEqual != "", match != nil, notMatch != nil} {
		if b {
			set++
		}
	}
	if set > 1 {
		return nil, fmt.Errorf("at most one of equal, not_equal, match, not_match")
	}
	n := &Namespace{equal: equal, notEqual: notEqual}
	for _, kv := range [...][2]string{{"equal", equal}, {"not_equal", notEqual}} {
		if kv[1] != "" && !isDNSLabel(kv[1]) {
			return nil, fmt.Errorf("%s: %q is not a valid namespace name (lowercase letters, digits and '-', at most 63 characters)", kv[0], kv[1])
		}
	}
	var err error
	if n.match, err = compileAll("match", match); err != nil {
		return nil, err
	}
	if n.notMatch, err = compileAll("not_match", notMatch); err != nil {
		return nil, err
	}
	return n, nil
}

func compileAll(key string, res []string) ([]*regexp.Regexp, error) {
	if res != nil && len(res) == 0 {
		return nil, fmt.Errorf("%s: must be a non-empty list of regular expressions", key)
	}
	out := make([]*regexp.Regexp, 0, len(res))
	for i, re := range res {
		if re == "" {
			return nil, fmt.Errorf("%s[%d]: must be a non-empty regular expression", key, i)
		}
		// The expression as written must be valid on its own: only then
		// is wrapping it safe (")(" is invalid, but "^(?:)()$" is not, and
		// "a)|(.*" would become "^(?:a)|(.*)$", which matches every name).
		if _, err := regexp.Compile(re); err != nil {
			return nil, fmt.Errorf("%s[%d]: invalid regular expression %q: %v", key, i, re, err)
		}
		// Anchor: APISIX users write "default" and expect exactly "default".
		// The group keeps alternations like "a|b" inside the anchors.
		c, err := regexp.Compile("^(?:" + re + ")$")
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: invalid regular expression %q: %v", key, i, re, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// FieldSelector returns the fieldSelector to send with LIST and WATCH
// ("metadata.namespace=NAME" or "metadata.namespace!=NAME"), or "" when the
// filter can only be applied client-side (match, not_match) or there is none.
func (n *Namespace) FieldSelector() string {
	switch {
	case n == nil:
		return ""
	case n.equal != "":
		return "metadata.namespace=" + n.equal
	case n.notEqual != "":
		return "metadata.namespace!=" + n.notEqual
	}
	return ""
}

// Allows reports whether objects of namespace ns are kept. It checks every
// rule, including those also sent as a field selector, so a proxy in front
// of the apiserver that ignores fieldSelector cannot leak other namespaces.
func (n *Namespace) Allows(ns string) bool {
	if n == nil {
		return true
	}
	if n.equal != "" && ns != n.equal {
		return false
	}
	if n.notEqual != "" && ns == n.notEqual {
		return false
	}
	if len(n.match) > 0 && !anyMatch(n.match, ns) {
		return false
	}
	if anyMatch(n.notMatch, ns) {
		return false
	}
	return true
}

func anyMatch(res []*regexp.Regexp, s string) bool {
	for _, re := range res {
		if re.MatchString(s) {
			return true
		}
	}
	return false
}

// isDNSLabel reports whether s is an RFC 1123 label, the form of a
// Kubernetes namespace name.
func isDNSLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i > 0 && i < len(s)-1:
		default:
			return false
		}
	}
	return true
}
