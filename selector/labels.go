package selector

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Labels is a parsed Kubernetes label selector: a conjunction of
// requirements. The zero value is the empty selector, which matches
// everything.
type Labels struct {
	reqs []requirement
}

type operator int

const (
	opEqual    operator = iota // k=v, k==v
	opNotEqual                 // k!=v
	opIn                       // k in (a,b)
	opNotIn                    // k notin (a,b)
	opExists                   // k
	opNotExist                 // !k
	opGt                       // k>N
	opLt                       // k<N
)

type requirement struct {
	key    string
	op     operator
	values []string // sorted, deduplicated; one value for =, !=, > and <
	num    int64    // the value of > and <, parsed
}

// ParseLabels parses Kubernetes label selector syntax: requirements joined
// by "," (AND), each one of
//
//	key=value  key==value  key!=value
//	key in (v1,v2)  key notin (v1,v2)
//	key  !key
//	key>N  key<N
//
// Whitespace between tokens is ignored. A value may be written in double
// quotes (first="a"): the reference APISIX page writes them so, and the
// apiserver refuses them, so they are removed here. Keys and values are
// validated as apimachinery does (a key is an optional DNS-subdomain prefix
// and "/", then a name of at most 63 characters of [A-Za-z0-9-_.] that
// starts and ends alphanumeric; a value has the same form or is empty).
// The empty string is the empty selector.
//
// key>N and key<N are apimachinery's numeric comparisons: N is one
// integer, as strconv.ParseInt(N, 10, 64) reads it, that is also a valid
// label value (so not negative: "-1" is not a label value, and the
// apiserver refuses it too). They match objects whose label is an integer
// greater (less) than N.
func ParseLabels(s string) (Labels, error) {
	p := parser{lex: lexer{src: s}}
	var l Labels
	if p.peek().kind == tEnd {
		return l, nil
	}
	for {
		r, err := p.requirement()
		if err != nil {
			return Labels{}, err
		}
		l.reqs = append(l.reqs, r)
		switch t := p.next(); t.kind {
		case tEnd:
			// apimachinery's order: by key, so that equivalent selectors
			// print the same. Stable keeps repeated keys in input order.
			sort.SliceStable(l.reqs, func(i, j int) bool { return l.reqs[i].key < l.reqs[j].key })
			return l, nil
		case tComma:
		default:
			return Labels{}, p.errorf(t, "expected ',' or end of selector, found %s", t)
		}
	}
}

// String returns the selector in canonical form, the one sent as the
// labelSelector query parameter: requirements sorted by key (as
// apimachinery sorts them; requirements with the same key keep their input
// order), written k=v, k!=v, k in (a,b), k notin (a,b), k, !k, k>N, k<N
// (N as written, as apimachinery writes it), with the
// values of in/notin sorted and deduplicated, joined by ",". Quotes are
// gone. The empty selector is "".
func (l Labels) String() string {
	var b strings.Builder
	for i, r := range l.reqs {
		if i > 0 {
			b.WriteByte(',')
		}
		switch r.op {
		case opEqual:
			b.WriteString(r.key + "=" + r.values[0])
		case opNotEqual:
			b.WriteString(r.key + "!=" + r.values[0])
		case opIn:
			b.WriteString(r.key + " in (" + strings.Join(r.values, ",") + ")")
		case opNotIn:
			b.WriteString(r.key + " notin (" + strings.Join(r.values, ",") + ")")
		case opExists:
			b.WriteString(r.key)
		case opNotExist:
			b.WriteString("!" + r.key)
		case opGt:
			b.WriteString(r.key + ">" + r.values[0])
		case opLt:
			b.WriteString(r.key + "<" + r.values[0])
		}
	}
	return b.String()
}

// Empty reports whether the selector has no requirement (matches all).
func (l Labels) Empty() bool { return len(l.reqs) == 0 }

// Matches reports whether a set of labels satisfies every requirement,
// with the apiserver's semantics: != and notin also match when the key is
// absent; > and < match only a present label whose value is an integer.
func (l Labels) Matches(labels map[string]string) bool {
	for _, r := range l.reqs {
		v, has := labels[r.key]
		var ok bool
		switch r.op {
		case opEqual, opIn:
			ok = has && slices.Contains(r.values, v)
		case opNotEqual, opNotIn:
			ok = !has || !slices.Contains(r.values, v)
		case opExists:
			ok = has
		case opNotExist:
			ok = !has
		case opGt, opLt:
			n, err := strconv.ParseInt(v, 10, 64)
			ok = has && err == nil && (r.op == opGt && n > r.num || r.op == opLt && n < r.num)
		}
		if !ok {
			return false
		}
	}
	return true
}

// --- lexer ---

type tokenKind int

const (
	tEnd tokenKind = iota
	tIdent
	tQuoted
	tNot      // !
	tEq       // = or ==
	tNotEq    // !=
	tOpen     // (
	tClose    // )
	tComma    // ,
	tGt       // >
	tLt       // <
	tBadQuote // unterminated quote
)

type token struct {
	kind tokenKind
	text string // identifier or unquoted value; operator text otherwise
	pos  int    // byte offset in the source
}

func (t token) String() string {
	switch t.kind {
	case tEnd:
		return "end of selector"
	case tIdent:
		return fmt.Sprintf("%q", t.text)
	case tQuoted:
		return fmt.Sprintf("quoted %q", t.text)
	}
	return fmt.Sprintf("%q", t.text)
}

type lexer struct {
	src string
	pos int
}

// isSpecial lists the bytes that end an identifier, as apimachinery's lexer.
func isSpecial(c byte) bool {
	switch c {
	case '!', '=', '(', ')', ',', '<', '>', '"', ' ', '\t', '\n', '\r', '\f', '\v':
		return true
	}
	return false
}

var punctuation = map[byte]tokenKind{'(': tOpen, ')': tClose, ',': tComma, '<': tLt, '>': tGt}

func (l *lexer) next() token {
	for l.pos < len(l.src) && strings.IndexByte(" \t\n\r\f\v", l.src[l.pos]) >= 0 {
		l.pos++
	}
	start := l.pos
	if start == len(l.src) {
		return token{kind: tEnd, pos: start}
	}
	two := func(k1 tokenKind, second byte, k2 tokenKind) token {
		if l.pos+1 < len(l.src) && l.src[l.pos+1] == second {
			l.pos += 2
			return token{kind: k2, text: l.src[start:l.pos], pos: start}
		}
		l.pos++
		return token{kind: k1, text: l.src[start:l.pos], pos: start}
	}
	switch c := l.src[start]; c {
	case '!':
		return two(tNot, '=', tNotEq)
	case '=':
		return two(tEq, '=', tEq)
	case '(', ')', ',', '<', '>':
		l.pos++
		kind := punctuation[c]
		return token{kind: kind, text: string(c), pos: start}
	case '"':
		end := strings.IndexByte(l.src[start+1:], '"')
		if end < 0 {
			l.pos = len(l.src)
			return token{kind: tBadQuote, text: l.src[start:], pos: start}
		}
		l.pos = start + 1 + end + 1
		return token{kind: tQuoted, text: l.src[start+1 : start+1+end], pos: start}
	}
	for l.pos < len(l.src) && !isSpecial(l.src[l.pos]) {
		l.pos++
	}
	return token{kind: tIdent, text: l.src[start:l.pos], pos: start}
}

// --- parser ---

type parser struct {
	lex    lexer
	peeked *token
}

func (p *parser) next() token {
	if p.peeked != nil {
		t := *p.peeked
		p.peeked = nil
		return t
	}
	return p.lex.next()
}

func (p *parser) peek() token {
	if p.peeked == nil {
		t := p.lex.next()
		p.peeked = &t
	}
	return *p.peeked
}

func (p *parser) errorf(t token, format string, args ...any) error {
	return fmt.Errorf("invalid label selector %q: at column %d: %s", p.lex.src, t.pos+1, fmt.Sprintf(format, args...))
}

func (p *parser) requirement() (requirement, error) {
	t := p.next()
	negated := t.kind == tNot
	if negated {
		t = p.next()
	}
	if t.kind != tIdent {
		return requirement{}, p.errorf(t, "expected a label key, found %s", t)
	}
	r := requirement{key: t.text}
	if msg := validateKey(r.key); msg != "" {
		return requirement{}, p.errorf(t, "key %q: %s", r.key, msg)
	}
	if negated {
		r.op = opNotExist
		return r, nil
	}
	switch t := p.peek(); {
	case t.kind == tEnd || t.kind == tComma:
		r.op = opExists
		return r, nil
	case t.kind == tIdent && t.text == "in":
		r.op = opIn
	case t.kind == tIdent && t.text == "notin":
		r.op = opNotIn
	case t.kind == tEq:
		r.op = opEqual
	case t.kind == tNotEq:
		r.op = opNotEqual
	case t.kind == tGt:
		r.op = opGt
	case t.kind == tLt:
		r.op = opLt
	default:
		return requirement{}, p.errorf(t, "expected an operator (=, ==, !=, in, notin, >, <), ',' or end of selector after key %q, found %s", r.key, t)
	}
	p.next()
	if r.op == opIn || r.op == opNotIn {
		var err error
		r.values, err = p.valueList()
		return r, err
	}
	at := p.peek()
	v, err := p.value(true)
	if err != nil {
		return r, err
	}
	r.values = []string{v}
	if r.op == opGt || r.op == opLt {
		if r.num, err = strconv.ParseInt(v, 10, 64); err != nil {
			return requirement{}, p.errorf(at, "value %q: for > and <, the value must be an integer (at most %d)", v, int64(1<<63-1))
		}
	}
	return r, nil
}

// value reads one value; an absent value (k= followed by ',', ')' or the
// end) is the empty value, as in apimachinery.
func (p *parser) value(single bool) (string, error) {
	t := p.peek()
	switch {
	case t.kind == tEnd || t.kind == tComma || (!single && t.kind == tClose):
		return "", nil
	case t.kind == tIdent || t.kind == tQuoted:
		p.next()
		if msg := validateValue(t.text); msg != "" {
			return "", p.errorf(t, "value %q: %s", t.text, msg)
		}
		return t.text, nil
	case t.kind == tBadQuote:
		return "", p.errorf(t, "unterminated quoted value %s", t.text)
	}
	return "", p.errorf(t, "expected a value, found %s", t)
}

// valueList reads "(v1, v2, ...)"; "()" is the set holding the empty value.
func (p *parser) valueList() ([]string, error) {
	if t := p.next(); t.kind != tOpen {
		return nil, p.errorf(t, "expected '(' after in/notin, found %s", t)
	}
	var vals []string
	for {
		v, err := p.value(false)
		if err != nil {
			return nil, err
		}
		vals = append(vals, v)
		switch t := p.next(); t.kind {
		case tClose:
			slices.Sort(vals)
			return slices.Compact(vals), nil
		case tComma:
		default:
			return nil, p.errorf(t, "expected ',' or ')' in value list, found %s", t)
		}
	}
}

// validateKey checks a label key as apimachinery's IsQualifiedName does and
// returns why it is invalid, or "".
func validateKey(k string) string {
	name := k
	if i := strings.IndexByte(k, '/'); i >= 0 {
		prefix := k[:i]
		name = k[i+1:]
		if prefix == "" {
			return "prefix before '/' must not be empty"
		}
		if !isDNSSubdomain(prefix) {
			return "prefix must be a DNS subdomain (lowercase alphanumeric, '-' and '.', at most 253 characters)"
		}
	}
	if name == "" {
		return "name part must not be empty"
	}
	return validateName(name, "name part")
}

func validateValue(v string) string {
	if v == "" {
		return ""
	}
	return validateName(v, "value")
}

// validateName checks the shared form of a key's name part and a value:
// at most 63 characters of [A-Za-z0-9-_.], alphanumeric at both ends.
func validateName(s, what string) string {
	if len(s) > 63 {
		return what + " must be at most 63 characters"
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && ((c != '-' && c != '_' && c != '.') || i == 0 || i == len(s)-1) {
			return what + " must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
		}
	}
	return ""
}

func isDNSSubdomain(s string) bool {
	if len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if !isDNSLabel(label) {
			return false
		}
	}
	return true
}
