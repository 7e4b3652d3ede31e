// Package dump is kdisc's control API: the dump of what the tables hold
// (the shape of APISIX's /v1/discovery/kubernetes/dump), nodes lookups,
// health, readiness and metrics over HTTP. It only reads tables; whoever
// fills them provides a Source.
package dump

import (
	"cmp"
	"slices"

	jsoniter "github.com/json-iterator/go"

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
	// Detail is there only when the cluster keeps node detail
	// (node_detail: true; see AddDetail): where each service's nodes run.
	Detail []DetailEntry `json:"detail,omitzero"`
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
		b = shm.AppendJSONString(b, p.Name)
		b = append(b, ':')
		b = shm.AppendNodesJSON(b, p.Nodes)
	}
	return append(b, '}')
}

// DetailEntry is the node detail of one service: Name is
// "namespace/name", Nodes every node of every port (each host and port
// once), in the table's order.
type DetailEntry struct {
	Name  string       `json:"name"`
	Nodes []NodeDetail `json:"nodes"`
}

// NodeDetail is where one node runs, as the Endpoints or EndpointSlice
// says (node_detail): fields are empty (and absent in JSON) when unknown.
// Endpoints carry no zone.
type NodeDetail struct {
	Host      string     `json:"host"`
	Port      uint16     `json:"port"`
	NodeName  string     `json:"node_name,omitempty"`
	Zone      string     `json:"zone,omitempty"`
	TargetRef *TargetRef `json:"target_ref,omitempty"`
}

// TargetRef is the object behind an address, usually a Pod.
type TargetRef struct {
	Kind string `json:"kind,omitempty"`
	Name string `json:"name,omitempty"`
	UID  string `json:"uid,omitempty"`
}

// ParseDetail reads a detail record as the table stores it (a JSON array
// of NodeDetail).
func ParseDetail(b []byte) ([]NodeDetail, error) {
	nodes := []NodeDetail{}
	if err := jsonStd.Unmarshal(b, &nodes); err != nil {
		return nil, err
	}
	return nodes, nil
}

// AddDetail fills c.Detail from r's detail records: one entry per service
// c lists that has one, in c's order. Call it for a cluster that keeps
// node detail; after it, the dump shows "detail" even when empty.
func (c *Cluster) AddDetail(r *shm.Reader) {
	c.Detail = []DetailEntry{}
	var buf []byte
	for _, e := range c.Endpoints {
		b, ok := r.Detail(buf[:0], e.Name)
		if !ok {
			continue
		}
		buf = b
		if nodes, err := ParseDetail(b); err == nil {
			c.Detail = append(c.Detail, DetailEntry{Name: e.Name, Nodes: nodes})
		}
	}
}

// jsonStd decodes the table's JSON (values and detail records) with
// json-iterator, whose decoder every kdisc binary links anyway, instead of
// encoding/json's, which would add ~0.09 MB for these cold paths.
var jsonStd = jsoniter.ConfigCompatibleWithStandardLibrary
