package fakeapi

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// A minimal copy of the apiserver's label and field selector handling, so
// the fake filters (and refuses) what the real server filters (and
// refuses). It does not depend on kdisc's own selector package: the fake
// is the reference that package is tested against.

// requirement is one comma-separated term of a label selector.
type requirement struct {
	key    string
	op     string // "=", "!=", "in", "notin", "exists", "!", "gt", "lt"
	values []string
}

var (
	labelValueRE = regexp.MustCompile(`^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$`)
	labelNameRE  = regexp.MustCompile(`^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`)
	dnsSubRE     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	setOpRE      = regexp.MustCompile(`^(\S+)\s+(in|notin)\s*\((.*)\)$`)
)

const labelValueMsg = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', " +
	"and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', " +
	"regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"

// parseLabelSelector parses Kubernetes label selector syntax. Errors read
// like the apiserver's ("unable to parse requirement: ..."), which answers
// them with 400; quoted values such as first="a" are refused as it does.
func parseLabelSelector(s string) ([]requirement, error) {
	var reqs []requirement
	for _, term := range splitTerms(s) {
		term = strings.TrimSpace(term)
		if term == "" {
			if strings.TrimSpace(s) == "" {
				return nil, nil
			}
			return nil, fmt.Errorf("found ',', expected: !, identifier, or 'end of string'")
		}
		r, err := parseRequirement(term)
		if err != nil {
			return nil, err
		}
		reqs = append(reqs, r)
	}
	return reqs, nil
}

// splitTerms splits on commas outside parentheses.
func splitTerms(s string) []string {
	var out []string
	depth, start := 0, 0
	for i, c := range s {
		switch c {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

func parseRequirement(t string) (requirement, error) {
	var r requirement
	switch {
	case strings.HasPrefix(t, "!"):
		r = requirement{key: strings.TrimSpace(t[1:]), op: "!"}
	case setOpRE.MatchString(t):
		m := setOpRE.FindStringSubmatch(t)
		r = requirement{key: m[1], op: m[2]}
		for v := range strings.SplitSeq(m[3], ",") {
			r.values = append(r.values, strings.TrimSpace(v))
		}
	default:
		r.op = "exists"
		r.key = t
		for _, op := range []string{"!=", "==", "=", ">", "<"} {
			if i := strings.Index(t, op); i >= 0 {
				r.key = strings.TrimSpace(t[:i])
				r.values = []string{strings.TrimSpace(t[i+len(op):])}
				r.op = map[string]string{"!=": "!=", "==": "=", "=": "=", ">": "gt", "<": "lt"}[op]
				break
			}
		}
	}
	if err := validateLabelKey(r.key); err != nil {
		return r, fmt.Errorf("unable to parse requirement: %v", err)
	}
	for i, v := range r.values {
		if r.op == "gt" || r.op == "lt" {
			if _, err := strconv.ParseInt(v, 10, 64); err != nil {
				return r, fmt.Errorf("unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer")
			}
			continue
		}
		if !labelValueRE.MatchString(v) || len(v) > 63 {
			return r, fmt.Errorf("unable to parse requirement: values[%d][%s]: Invalid value: %q: %s", i, r.key, v, labelValueMsg)
		}
	}
	return r, nil
}

func validateLabelKey(k string) error {
	name := k
	if i := strings.LastIndex(k, "/"); i >= 0 {
		prefix := k[:i]
		name = k[i+1:]
		if prefix == "" || len(prefix) > 253 || !dnsSubRE.MatchString(prefix) {
			return fmt.Errorf("key: Invalid value: %q: prefix part must be a lowercase RFC 1123 subdomain", k)
		}
	}
	if name == "" || len(name) > 63 || !labelNameRE.MatchString(name) {
		return fmt.Errorf("key: Invalid value: %q: name part must consist of alphanumeric characters, '-', '_' or '.', "+
			"and must start and end with an alphanumeric character", k)
	}
	return nil
}

func (r requirement) matches(labels map[string]string) bool {
	v, ok := labels[r.key]
	switch r.op {
	case "exists":
		return ok
	case "!":
		return !ok
	case "=":
		return ok && v == r.values[0]
	case "!=":
		return !ok || v != r.values[0]
	case "in":
		return ok && contains(r.values, v)
	case "notin":
		return !ok || !contains(r.values, v)
	case "gt", "lt":
		n, err := strconv.ParseInt(v, 10, 64)
		want, _ := strconv.ParseInt(r.values[0], 10, 64)
		if !ok || err != nil {
			return false
		}
		if r.op == "gt" {
			return n > want
		}
		return n < want
	}
	return false
}

func contains(vs []string, v string) bool {
	for _, x := range vs {
		if x == v {
			return true
		}
	}
	return false
}

// fieldTerm is one term of a field selector: metadata.name or
// metadata.namespace, compared with = (==) or !=.
type fieldTerm struct {
	field, value string
	not          bool
}

func parseFieldSelector(s string) ([]fieldTerm, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var terms []fieldTerm
	for t := range strings.SplitSeq(s, ",") {
		var ft fieldTerm
		var ok bool
		if ft.field, ft.value, ok = strings.Cut(t, "!="); ok {
			ft.not = true
		} else if ft.field, ft.value, ok = strings.Cut(t, "=="); !ok {
			if ft.field, ft.value, ok = strings.Cut(t, "="); !ok {
				return nil, fmt.Errorf("invalid selector: '%s'; can't understand '%s'", s, t)
			}
		}
		ft.field = strings.TrimSpace(ft.field)
		ft.value = strings.TrimSpace(ft.value)
		if ft.field != "metadata.name" && ft.field != "metadata.namespace" {
			return nil, fmt.Errorf("field label not supported: %s", ft.field)
		}
		terms = append(terms, ft)
	}
	return terms, nil
}

// filter is a compiled request's selection: path namespace, field and
// label selectors.
type filter struct {
	namespace string
	fields    []fieldTerm
	labels    []requirement
}

// empty reports whether nothing but the path namespace filters: the real
// server only reports remainingItemCount then.
func (f *filter) empty() bool { return len(f.fields) == 0 && len(f.labels) == 0 }

// namespaceEqual reports whether the field selector pins one namespace
// (metadata.namespace=X): the selector behind the real server's paging
// trap on the cluster-wide path.
func (f *filter) namespaceEqual() bool {
	for _, t := range f.fields {
		if t.field == "metadata.namespace" && !t.not {
			return true
		}
	}
	return false
}

func (f *filter) matches(o *stored) bool {
	if f.namespace != "" && o.ns != f.namespace {
		return false
	}
	for _, t := range f.fields {
		got := o.name
		if t.field == "metadata.namespace" {
			got = o.ns
		}
		if (got == t.value) == t.not {
			return false
		}
	}
	for _, r := range f.labels {
		if !r.matches(o.labels) {
			return false
		}
	}
	return true
}

func newFilter(namespace, fieldSel, labelSel string) (*filter, *Status) {
	f := &filter{namespace: namespace}
	var err error
	if f.fields, err = parseFieldSelector(fieldSel); err != nil {
		return nil, badRequest(err.Error())
	}
	if f.labels, err = parseLabelSelector(labelSel); err != nil {
		return nil, badRequest(err.Error())
	}
	return f, nil
}
