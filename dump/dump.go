// Package dump is kdisc's control API: the dump of what the tables hold
// (the shape of APISIX's /v1/discovery/kubernetes/dump), nodes lookups,
// health, readiness and metrics over HTTP. It only reads tables; whoever
// fills them provides a Source.
package dump

import (
	"cmp"
	"slices"

	"github.com/kdisc/kdisc/shm"
)

// Dump is everything the tables hold and the configuration they came from.
type Dump struct {
	Endpoints []Cluster `json:"endpoints"`
	// Config is the effective configuration: a single object in single
	// mode, an array in multi mode, tokens redacted.
	Config any `json:"config"`
}

// Cluster is the content of one cluster's table. ID is absent in single
// mode.
type Cluster struct {
	ID        string  `json:"id,omitempty"`
	Endpoints []Entry `json:"endpoints"`
}

// Entry is one service: Name is "namespace/name"; Value is a JSON object,
// as a string, mapping each port name to its nodes.
type Entry struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Table reads every entry of r, sorted by name. Nothing is left out,
// however many services there are.
func Table(id string, r *shm.Reader) Cluster {
	c := Cluster{ID: id, Endpoints: []Entry{}}
	r.Range(func(key string, ports []shm.Port) bool {
		// A service with no address to serve (scaled to zero) answers
		// "empty" to lookups but is not listed, as APISIX lists only
		// services with nodes; so is a port without nodes.
		ports = slices.DeleteFunc(ports, func(p shm.Port) bool { return len(p.Nodes) == 0 })
		if len(ports) > 0 {
			c.Endpoints = append(c.Endpoints, Entry{Name: key, Value: string(AppendValue(nil, ports))})
		}
		return true
	})
	slices.SortFunc(c.Endpoints, func(a, b Entry) int { return cmp.Compare(a.Name, b.Name) })
	return c
}

// AppendValue appends ports as {"portName":[nodes...],...}, in the order
// given (the table keeps ports sorted by name).
func AppendValue(b []byte, ports []shm.Port) []byte {
	b = append(b, '{')
	for i, p := range ports {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, p.Name)
		b = append(b, ':')
		b = shm.AppendNodesJSON(b, p.Nodes)
	}
	return append(b, '}')
}

// appendString appends s as a JSON string. Port names are IANA service
// names or decimal numbers, but a table may hold anything: escape it.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
