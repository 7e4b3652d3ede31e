package shm

import (
	"bytes"
	"cmp"
	"net/netip"
	"strconv"
)

// Node is one address of a service: where a proxy sends traffic.
//
// It is a value type: Addr holds IPv4 and IPv6 addresses without a pointer
// into the table, so copying nodes out of shared memory never aliases memory
// the writer may rewrite. Name is set instead of Addr for EndpointSlices of
// addressType FQDN; a Reader hands out interned copies of such names.
type Node struct {
	Addr   netip.Addr // the IP address; the zero Addr when Name is set
	Name   string     // a DNS name (addressType FQDN); "" for IP nodes
	Port   uint16
	Weight uint32
}

// Host returns the host as the API stores it: a DNS name, or the IP address
// (IPv6 compressed, no brackets). It allocates for IP nodes; use AppendHost
// on hot paths.
func (n Node) Host() string {
	if n.Name != "" {
		return n.Name
	}
	return n.Addr.String()
}

// AppendHost appends the host text (see Host) to b.
func (n Node) AppendHost(b []byte) []byte {
	if n.Name != "" {
		return append(b, n.Name...)
	}
	return n.Addr.AppendTo(b)
}

// AppendJSON appends the node as {"host":"…","port":…,"weight":…}.
// Hosts never need escaping: IP text and DNS names are plain ASCII.
func (n Node) AppendJSON(b []byte) []byte {
	b = append(b, `{"host":"`...)
	b = n.AppendHost(b)
	b = append(b, `","port":`...)
	b = strconv.AppendUint(b, uint64(n.Port), 10)
	b = append(b, `,"weight":`...)
	b = strconv.AppendUint(b, uint64(n.Weight), 10)
	return append(b, '}')
}

// MarshalJSON implements json.Marshaler with the shape of the contract.
func (n Node) MarshalJSON() ([]byte, error) { return n.AppendJSON(nil), nil }

// AppendJSONString appends s as a JSON string: quotes, backslashes and
// control characters escaped, other bytes as they are (the API stores
// valid UTF-8). Port names, keys and node detail are written with it.
func AppendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
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

// AppendNodesJSON appends nodes as a JSON array.
func AppendNodesJSON(b []byte, nodes []Node) []byte {
	b = append(b, '[')
	for i, n := range nodes {
		if i > 0 {
			b = append(b, ',')
		}
		b = n.AppendJSON(b)
	}
	return append(b, ']')
}

// Compare orders nodes as APISIX does: host text byte-wise, then port.
func Compare(a, b Node) int {
	var ab, bb [64]byte
	if c := bytes.Compare(a.AppendHost(ab[:0]), b.AppendHost(bb[:0])); c != 0 {
		return c
	}
	return cmp.Compare(a.Port, b.Port)
}

// Port is one named port of a service and its nodes. Name is the port's
// name in the Endpoints or EndpointSlice object, or the port number in
// decimal when the port is unnamed.
//
// Number is the port's number, kept only for a port with no node, so that
// a query by number finds the port and answers Empty rather than Unknown;
// a port with nodes has each node's number, and Number is not stored (Get
// returns 0 for it).
type Port struct {
	Name   string
	Number uint16
	Nodes  []Node
}
