package config

// yamlValue turns a YAML document into Go values exactly as
// goccy/go-yaml's yaml.Unmarshal(data, &v) does for v of type any (maps are
// map[string]any, sequences []any, integers int64 or uint64, floats
// float64, null nil, ...), from goccy's own parser.
//
// Why not yaml.Unmarshal: goccy's reflection decoder (and the encoder and
// struct machinery it reaches) is about 0.3 MB of the stripped kdisc binary,
// for two calls that only ever want the generic tree. The parser — where
// the YAML is actually understood — is goccy's; this file is the
// tree-to-values walk, a port of goccy/go-yaml v1.19.2's
// (*Decoder).nodeToValue and its helpers (decode.go, MIT licence,
// Copyright (c) 2019 Masaaki Goshima), including its quirks (aliases inside
// their own anchor read as null, merge keys, tags). TestYAMLValueMatchesGoccy
// checks the two agree, values and error text, on every config and
// kubeconfig in testdata and a set of corner cases.

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// yamlMaxDepth is goccy's maxDecodeDepth.
const yamlMaxDepth = 10000

var errYAMLMaxDepth = errors.New("exceeded max depth") // goccy's ErrExceededMaxDepth

// yamlError is an error found while walking the tree, formatted as goccy's
// FormatError(err, false, false) formats its own: "[line:column] message".
type yamlError struct {
	msg string
	tok *token.Token
}

func (e *yamlError) Error() string {
	if e.tok == nil {
		return e.msg
	}
	return fmt.Sprintf("[%d:%d] %s", e.tok.Position.Line, e.tok.Position.Column, e.msg)
}

// formatYAMLError is yaml.FormatError(err, false, false): goccy's errors
// give their position and message without the source lines (which may hold
// a token); any other error its text.
func formatYAMLError(err error) string {
	var ye interface {
		FormatError(colored, inclSource bool) string
	}
	if errors.As(err, &ye) {
		return ye.FormatError(false, false)
	}
	return err.Error()
}

// unmarshalYAML is yaml.Unmarshal(data, &v) for v of type any.
func unmarshalYAML(data []byte) (any, error) {
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, err
	}
	d := &yamlDecoder{anchorNodes: map[string]ast.Node{}, anchorValues: map[string]any{}}
	// goccy converts every document (an error in any of them fails the
	// whole call) and decodes the first whose value is not null or whose
	// body is an explicit null.
	var out any
	found := false
	for _, doc := range f.Docs {
		v, err := d.value(nil, doc.Body)
		if err != nil {
			return nil, err
		}
		if !found && (v != nil || (doc.Body != nil && doc.Body.Type() == ast.NullType)) {
			out, found = v, true
		}
	}
	return out, nil
}

type yamlDecoder struct {
	depth        int
	anchorNodes  map[string]ast.Node
	anchorValues map[string]any // goccy: anchorValueMap (an invalid reflect.Value reads as nil)
}

// anchors is goccy's context anchor set: a map shared by a subtree and
// written in place, which is why an alias to an anchor completed inside
// the same enclosing anchor reads as null (goccy's behaviour, kept).
type anchors map[string]struct{}

func withAnchor(a anchors, name string) anchors {
	if a == nil {
		a = anchors{}
	}
	a[name] = struct{}{}
	return a
}

func (d *yamlDecoder) value(a anchors, node ast.Node) (any, error) {
	d.depth++
	defer func() { d.depth-- }()
	if d.depth > yamlMaxDepth {
		return nil, errYAMLMaxDepth
	}
	switch n := node.(type) {
	case *ast.NullNode:
		return nil, nil
	case *ast.StringNode:
		return n.GetValue(), nil
	case *ast.IntegerNode:
		return n.GetValue(), nil
	case *ast.FloatNode:
		return n.GetValue(), nil
	case *ast.BoolNode:
		return n.GetValue(), nil
	case *ast.InfinityNode:
		return n.GetValue(), nil
	case *ast.NanNode:
		return n.GetValue(), nil
	case *ast.TagNode:
		return d.tagged(a, n)
	case *ast.AnchorNode:
		name := n.Name.GetToken().Value
		d.anchorNodes[name] = nil
		v, err := d.value(withAnchor(a, name), n.Value)
		if err != nil {
			delete(d.anchorNodes, name)
			return nil, err
		}
		d.anchorNodes[name] = n.Value
		d.anchorValues[name] = v
		return v, nil
	case *ast.AliasNode:
		text := n.Value.String()
		if _, ok := a[text]; ok {
			return nil, nil // self recursion
		}
		if v, ok := d.anchorValues[text]; ok {
			return v, nil
		}
		if node, ok := d.anchorNodes[text]; ok {
			return d.value(a, node)
		}
		return nil, &yamlError{fmt.Sprintf("could not find alias %q", text), n.Value.GetToken()}
	case *ast.LiteralNode:
		return n.Value.GetValue(), nil
	case *ast.MappingKeyNode:
		return d.value(a, n.Value)
	case *ast.MappingValueNode:
		m := map[string]any{}
		if err := d.setMapValue(a, n, m); err != nil {
			return nil, err
		}
		return m, nil
	case *ast.MappingNode:
		m := make(map[string]any, len(n.Values))
		for _, kv := range n.Values {
			if err := d.setMapValue(a, kv, m); err != nil {
				return nil, err
			}
		}
		return m, nil
	case *ast.SequenceNode:
		s := make([]any, 0, len(n.Values))
		for _, item := range n.Values {
			v, err := d.value(a, item)
			if err != nil {
				return nil, err
			}
			s = append(s, v)
		}
		return s, nil
	}
	return nil, nil
}

func (d *yamlDecoder) tagged(a anchors, n *ast.TagNode) (any, error) {
	sprint := func() (any, error) { // !!str and %TAG-directive tags
		v, err := d.value(a, n.Value)
		if err != nil {
			return nil, err
		}
		if v == nil {
			return "", nil
		}
		return fmt.Sprint(v), nil
	}
	if n.Directive != nil {
		return sprint()
	}
	switch token.ReservedTagKeyword(n.Start.Value) {
	case token.TimestampTag:
		t, _ := d.timestamp(a, n.Value)
		return t, nil
	case token.IntegerTag:
		v, err := d.value(a, n.Value)
		if err != nil {
			return nil, err
		}
		i, _ := strconv.Atoi(fmt.Sprint(v))
		return i, nil
	case token.FloatTag:
		v, err := d.value(a, n.Value)
		if err != nil {
			return nil, err
		}
		return toFloat(v), nil
	case token.NullTag:
		return nil, nil
	case token.BinaryTag:
		v, err := d.value(a, n.Value)
		if err != nil {
			return nil, err
		}
		s, ok := v.(string)
		if !ok {
			return nil, &yamlError{fmt.Sprintf("cannot convert %q to string", fmt.Sprint(v)), n.Value.GetToken()}
		}
		b, _ := base64.StdEncoding.DecodeString(s)
		return b, nil
	case token.BooleanTag:
		v, err := d.value(a, n.Value)
		if err != nil {
			return nil, err
		}
		s := strings.ToLower(fmt.Sprint(v))
		if b, err := strconv.ParseBool(s); err == nil {
			return b, nil
		}
		switch s {
		case "yes":
			return true, nil
		case "no":
			return false, nil
		}
		return nil, &yamlError{fmt.Sprintf("cannot convert %q to boolean", fmt.Sprint(v)), n.Value.GetToken()}
	case token.StringTag:
		return sprint()
	}
	return d.value(a, n.Value)
}

// timestampFormats is goccy's allowedTimestampFormats.
var timestampFormats = []string{
	"2006-1-2T15:4:5.999999999Z07:00",
	"2006-1-2t15:4:5.999999999Z07:00",
	"2006-1-2 15:4:5.999999999",
	"2006-1-2",
}

// timestamp is goccy's castToTime; as there, its error is dropped by the
// caller (a !!timestamp that is not a time reads as the zero time).
func (d *yamlDecoder) timestamp(a anchors, node ast.Node) (time.Time, error) {
	if node == nil {
		return time.Time{}, nil
	}
	v, err := d.value(a, node)
	if err != nil {
		return time.Time{}, err
	}
	if t, ok := v.(time.Time); ok {
		return t, nil
	}
	s, ok := v.(string)
	if !ok {
		return time.Time{}, nil
	}
	for _, f := range timestampFormats {
		if t, err := time.Parse(f, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, nil
}

// toFloat is goccy's castToFloat for the values a node can hold.
func toFloat(v any) float64 {
	switch v := v.(type) {
	case int:
		return float64(v)
	case int64:
		return float64(v)
	case uint64:
		return float64(v)
	case float64:
		return v
	case string:
		f, _ := strconv.ParseFloat(v, 64)
		return f
	}
	return 0
}

// setMapValue is goccy's setToMapValue.
func (d *yamlDecoder) setMapValue(a anchors, node ast.Node, m map[string]any) error {
	d.depth++
	defer func() { d.depth-- }()
	if d.depth > yamlMaxDepth {
		return errYAMLMaxDepth
	}
	switch n := node.(type) {
	case *ast.MappingValueNode:
		if n.Key.IsMergeKey() {
			value, err := d.mapNode(n.Value, true)
			if err != nil {
				return err
			}
			it := value.MapRange()
			for it.Next() {
				if err := d.setMapValue(a, it.KeyValue(), m); err != nil {
					return err
				}
			}
			return nil
		}
		k, err := d.value(a, n.Key)
		if err != nil {
			return err
		}
		key := "null"
		switch k := k.(type) {
		case nil:
		case string:
			key = k
		default:
			key = fmt.Sprint(k)
		}
		v, err := d.value(a, n.Value)
		if err != nil {
			return err
		}
		m[key] = v
	case *ast.MappingNode:
		for _, kv := range n.Values {
			if err := d.setMapValue(a, kv, m); err != nil {
				return err
			}
		}
	case *ast.AnchorNode:
		d.anchorNodes[n.Name.GetToken().Value] = n.Value
	}
	return nil
}

// mapNode is goccy's getMapNode.
func (d *yamlDecoder) mapNode(node ast.Node, merge bool) (ast.MapNode, error) {
	d.depth++
	defer func() { d.depth-- }()
	if d.depth > yamlMaxDepth {
		return nil, errYAMLMaxDepth
	}
	switch n := node.(type) {
	case ast.MapNode:
		return n, nil
	case *ast.AnchorNode:
		d.anchorNodes[n.Name.GetToken().Value] = n.Value
		return d.mapNode(n.Value, merge)
	case *ast.AliasNode:
		name := n.Value.GetToken().Value
		target := d.anchorNodes[name]
		if target == nil {
			return nil, fmt.Errorf("cannot find anchor by alias name %s", name)
		}
		return d.mapNode(target, merge)
	case *ast.SequenceNode:
		if !merge {
			return nil, unexpectedNode(node)
		}
		var maps []ast.MapNode
		for _, item := range n.Values {
			m, err := d.mapNode(item, false)
			if err != nil {
				return nil, err
			}
			maps = append(maps, m)
		}
		return ast.SequenceMergeValue(maps...), nil
	}
	return nil, unexpectedNode(node)
}

func unexpectedNode(node ast.Node) error {
	return &yamlError{fmt.Sprintf("%s was used where %s is expected", node.Type().YAMLName(), ast.MappingType.YAMLName()), node.GetToken()}
}

// kcDecoder fills the kubeconfig structs from the generic tree, with
// goccy's struct-decoding rules for what kdisc reads: unknown keys are
// ignored, null is the zero value, a string field takes a string or the
// text of a number or boolean, a bool field takes only a boolean. A value
// of the wrong shape is an error naming its path.
type kcDecoder struct{ err error }

func (d *kcDecoder) fail(path, key, want string) {
	if d.err == nil {
		if key != "" {
			path += "." + key
		}
		d.err = fmt.Errorf("%s: must be %s", strings.TrimPrefix(path, "."), want)
	}
}

func (d *kcDecoder) str(m map[string]any, path, key string) string {
	switch v := m[key].(type) {
	case nil:
		return ""
	case string:
		return v
	case int64:
		return strconv.FormatInt(v, 10)
	case uint64:
		return strconv.FormatUint(v, 10)
	case int:
		return strconv.Itoa(v)
	case float64:
		return fmt.Sprint(v)
	case bool:
		return strconv.FormatBool(v)
	}
	d.fail(path, key, "a string")
	return ""
}

func (d *kcDecoder) boolean(m map[string]any, path, key string) bool {
	switch v := m[key].(type) {
	case nil:
		return false
	case bool:
		return v
	}
	d.fail(path, key, "a boolean")
	return false
}

// obj is a map-valued key: nil when absent or null.
func (d *kcDecoder) obj(m map[string]any, path, key string) map[string]any {
	switch v := m[key].(type) {
	case nil:
		return nil
	case map[string]any:
		return v
	}
	d.fail(path, key, "a map")
	return nil
}

// list is a sequence-valued key.
func (d *kcDecoder) list(m map[string]any, path, key string) []any {
	switch v := m[key].(type) {
	case nil:
		return nil
	case []any:
		return v
	}
	d.fail(path, key, "a list")
	return nil
}

// objs is a sequence of maps (a null item is an empty map).
func (d *kcDecoder) objs(m map[string]any, path, key string) []map[string]any {
	items := d.list(m, path, key)
	out := make([]map[string]any, len(items))
	for i, item := range items {
		item := map[string]any{"": item}
		out[i] = d.obj(item, fmt.Sprintf("%s.%s[%d]", path, key, i), "")
		if out[i] == nil {
			out[i] = map[string]any{}
		}
	}
	return out
}

func (d *kcDecoder) strs(m map[string]any, path, key string) []string {
	items := d.list(m, path, key)
	if items == nil {
		return nil
	}
	out := make([]string, len(items))
	for i, item := range items {
		out[i] = d.str(map[string]any{"": item}, fmt.Sprintf("%s.%s[%d]", path, key, i), "")
	}
	return out
}

// decodeKubeconfig reads the part of a kubeconfig kdisc uses from its
// generic tree (unmarshalYAML's result, a map).
func decodeKubeconfig(doc map[string]any) (kcFile, error) {
	var f kcFile
	d := &kcDecoder{}
	f.CurrentContext = d.str(doc, "", "current-context")
	d.eachNamed(doc, "clusters", "cluster", func(name string, m map[string]any, p string) {
		e := kcNamedCluster{Name: name}
		if m != nil {
			e.Cluster = &kcCluster{
				Server:                   d.str(m, p, "server"),
				TLSServerName:            d.str(m, p, "tls-server-name"),
				InsecureSkipTLSVerify:    d.boolean(m, p, "insecure-skip-tls-verify"),
				CertificateAuthority:     d.str(m, p, "certificate-authority"),
				CertificateAuthorityData: d.str(m, p, "certificate-authority-data"),
				ProxyURL:                 d.str(m, p, "proxy-url"),
			}
			for j, x := range d.objs(m, p, "extensions") {
				e.Cluster.Extensions = append(e.Cluster.Extensions, kcExtension{
					Name:      d.str(x, fmt.Sprintf("%s.extensions[%d]", p, j), "name"),
					Extension: x["extension"],
				})
			}
		}
		f.Clusters = append(f.Clusters, e)
	})
	d.eachNamed(doc, "contexts", "context", func(name string, m map[string]any, p string) {
		e := kcNamedContext{Name: name}
		if m != nil {
			e.Context = &kcContext{
				Cluster:   d.str(m, p, "cluster"),
				User:      d.str(m, p, "user"),
				Namespace: d.str(m, p, "namespace"),
			}
		}
		f.Contexts = append(f.Contexts, e)
	})
	d.eachNamed(doc, "users", "user", func(name string, m map[string]any, p string) {
		e := kcNamedUser{Name: name}
		if m != nil {
			u := &kcUser{
				Token:                 d.str(m, p, "token"),
				TokenFile:             d.str(m, p, "tokenFile"),
				ClientCertificate:     d.str(m, p, "client-certificate"),
				ClientCertificateData: d.str(m, p, "client-certificate-data"),
				ClientKey:             d.str(m, p, "client-key"),
				ClientKeyData:         d.str(m, p, "client-key-data"),
				AuthProvider:          m["auth-provider"],
				Username:              d.str(m, p, "username"),
				Password:              d.str(m, p, "password"),
				As:                    d.str(m, p, "as"),
				AsUID:                 d.str(m, p, "as-uid"),
				AsGroups:              d.strs(m, p, "as-groups"),
				AsUserExtra:           d.obj(m, p, "as-user-extra"),
			}
			if x := d.obj(m, p, "exec"); x != nil {
				px := p + ".exec"
				u.Exec = &kcExec{
					APIVersion:         d.str(x, px, "apiVersion"),
					Command:            d.str(x, px, "command"),
					Args:               d.strs(x, px, "args"),
					InstallHint:        d.str(x, px, "installHint"),
					ProvideClusterInfo: d.boolean(x, px, "provideClusterInfo"),
					InteractiveMode:    d.str(x, px, "interactiveMode"),
				}
				for j, ev := range d.objs(x, px, "env") {
					pe := fmt.Sprintf("%s.env[%d]", px, j)
					u.Exec.Env = append(u.Exec.Env, kcEnv{Name: d.str(ev, pe, "name"), Value: d.str(ev, pe, "value")})
				}
			}
			e.User = u
		}
		f.Users = append(f.Users, e)
	})
	return f, d.err
}

// eachNamed calls fn with each entry of doc's list key (clusters,
// contexts, users): its name, its inner object (nil when absent) and that
// object's path for error messages.
func (d *kcDecoder) eachNamed(doc map[string]any, key, inner string, fn func(name string, m map[string]any, p string)) {
	for i, item := range d.objs(doc, "", key) {
		p := fmt.Sprintf(".%s[%d]", key, i)
		fn(d.str(item, p, "name"), d.obj(item, p, inner), p+"."+inner)
	}
}
