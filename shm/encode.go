package shm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Record encoding (writer side). A record is one service, in whole
// little-endian words so that a reader finds everything with aligned atomic
// loads and no byte-by-byte parsing:
//
//	word 0:  keyLen u16 | valLen u32 | nPorts u16
//	key:     keyLen bytes, zero-padded to a word (compared a word at a time)
//	value:   nPorts times a port (valLen bytes, a multiple of 8):
//	           word 0: nameLen u8 | format u8 | port u16 | bodyLen u32
//	           word 1: nNodes u32 | weight u32
//	           name:   nameLen bytes, zero-padded to a word
//	           body:   bodyLen bytes of nodes, zero-padded to a word
//
// The port's own header words let a reader compare its name and skip it
// without touching its body. The body has one of three formats:
//
//	fmtIPv4:  every node is an IPv4 address with the port and weight of
//	          the header: 4 bytes a node (the usual case: one port number,
//	          one weight for all the addresses of a port)
//	fmtIPv6:  the same with IPv6 addresses, 16 bytes a node
//	fmtMixed: anything else, a node at a time (below); the header's port
//	          and weight are those of the first node
//
// A mixed node is a flags byte, then its host, then port and weight unless
// they repeat the previous node's (the header's, for the first node):
//
//	flags:  bits 0-1 kind (0 IPv4, 1 IPv6, 2 DNS name); bit 2 same port;
//	        bit 3 same weight
//	host:   4 bytes | 16 bytes | nameLen u8 + name
//	port:   uint16 little-endian, unless same
//	weight: uvarint, unless same
//
// A service of 3 IPv4 nodes on port "http" costs 8 + key + 32 bytes.
const (
	kindIPv4   = 0
	kindIPv6   = 1
	kindName   = 2
	kindMask   = 3
	flagSamePt = 4
	flagSameWt = 8

	fmtIPv4  = 1
	fmtIPv6  = 2
	fmtMixed = 3

	recHeaderBytes  = 8
	portHeaderBytes = 16

	// MaxKeyLen is the longest key (a Kubernetes namespace and name are at
	// most 63 and 253 bytes; leave room).
	MaxKeyLen = 1024
	// MaxNameLen is the longest port name and DNS name.
	MaxNameLen = 255
)

var errEmptyKey = errors.New("shm: empty key")

// appendRecord appends the record for key and ports to b.
func appendRecord(b []byte, key string, ports []Port) ([]byte, error) {
	if key == "" {
		return b, errEmptyKey
	}
	if len(key) > MaxKeyLen {
		return b, fmt.Errorf("shm: key %.40q... is %d bytes, longer than %d", key, len(key), MaxKeyLen)
	}
	if len(ports) > maxPorts {
		return b, fmt.Errorf("shm: %s: %d ports, more than %d", key, len(ports), maxPorts)
	}
	start := len(b)
	b = append(b, make([]byte, recHeaderBytes)...)
	b = padWord(append(b, key...))
	valStart := len(b)
	for _, p := range ports {
		if len(p.Name) > MaxNameLen {
			return b[:start], fmt.Errorf("shm: %s: port name %.40q... longer than %d bytes", key, p.Name, MaxNameLen)
		}
		if len(p.Nodes) > math.MaxUint32 {
			return b[:start], fmt.Errorf("shm: %s port %q: %d nodes, too many", key, p.Name, len(p.Nodes))
		}
		hdr := len(b)
		b = append(b, make([]byte, portHeaderBytes)...)
		b = padWord(append(b, p.Name...))
		body := len(b)
		format, err := checkNodes(p.Nodes)
		if err != nil {
			return b[:start], fmt.Errorf("shm: %s port %q: %w", key, p.Name, err)
		}
		port, weight := p.Number, uint32(0) // a port with no node keeps its number
		if len(p.Nodes) > 0 {
			port, weight = p.Nodes[0].Port, p.Nodes[0].Weight
		}
		b = appendBody(b, format, p.Nodes)
		bodyLen := len(b) - body
		if bodyLen > math.MaxUint32 {
			return b[:start], fmt.Errorf("shm: %s port %q: %d bytes of nodes, too many", key, p.Name, bodyLen)
		}
		binary.LittleEndian.PutUint64(b[hdr:], uint64(len(p.Name))|format<<8|uint64(port)<<16|uint64(bodyLen)<<32)
		binary.LittleEndian.PutUint64(b[hdr+8:], uint64(len(p.Nodes))|uint64(weight)<<32)
		b = padWord(b)
	}
	valLen := len(b) - valStart
	if valLen > math.MaxUint32 {
		return b[:start], fmt.Errorf("shm: %s: value of %d bytes is too large", key, valLen)
	}
	h := uint64(len(key)) | uint64(valLen)<<16 | uint64(len(ports))<<48
	binary.LittleEndian.PutUint64(b[start:], h)
	return b, nil
}

// A blob record (a service's detail) holds opaque bytes instead of ports:
// its port count is blobPorts, and its value is the byte length in one word,
// then the bytes, zero-padded to a word. Its key is the service's key
// behind a NUL byte (detailKey), which no service key has.
//
// Two more port counts mark the records of a big value (big.go): bigPorts
// a head, piecePorts a piece. A service has at most maxPorts ports.
const (
	piecePorts = math.MaxUint16 - 2
	bigPorts   = math.MaxUint16 - 1
	blobPorts  = math.MaxUint16
	maxPorts   = piecePorts - 1
)

func detailKey(key string) string { return "\x00" + key }
func isDetailKey(key string) bool { return len(key) > 0 && key[0] == 0 }
func isBlob(r record) bool        { return r.nPorts == blobPorts }

// appendBlob appends the blob record for key and data to b.
func appendBlob(b []byte, key string, data []byte) ([]byte, error) {
	if len(key) > MaxKeyLen+1 {
		return b, fmt.Errorf("shm: key %.40q... is %d bytes, longer than %d", key[1:], len(key)-1, MaxKeyLen)
	}
	if len(data) > math.MaxUint32-16 {
		return b, fmt.Errorf("shm: %s: detail of %d bytes is too large", key[1:], len(data))
	}
	start := len(b)
	b = append(b, make([]byte, recHeaderBytes)...)
	b = padWord(append(b, key...))
	valStart := len(b)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(data)))
	b = padWord(append(b, data...))
	binary.LittleEndian.PutUint64(b[start:], uint64(len(key))|uint64(len(b)-valStart)<<16|uint64(blobPorts)<<48)
	return b, nil
}

// padWord zero-pads b to a whole number of words: the reader compares and
// decodes whole words, padding included.
func padWord(b []byte) []byte {
	for len(b)%8 != 0 {
		b = append(b, 0)
	}
	return b
}

// keyPad is a length rounded up to whole words: where the value starts
// relative to the key, where a body starts relative to a port name.
func keyPad(n uint64) uint64 { return (n + 7) &^ 7 }

// checkNodes validates nodes and picks their body format: fixed-width when
// every node is an address of one family sharing the first node's port
// and weight.
func checkNodes(nodes []Node) (uint64, error) {
	v4, v6 := true, true
	for i, n := range nodes {
		switch {
		case n.Name != "":
			if n.Addr.IsValid() {
				return 0, fmt.Errorf("node %d has both a name (%q) and an address (%s)", i, n.Name, n.Addr)
			}
			if len(n.Name) > MaxNameLen {
				return 0, fmt.Errorf("node %d: name %.40q... longer than %d bytes", i, n.Name, MaxNameLen)
			}
			v4, v6 = false, false
		case !n.Addr.IsValid():
			return 0, fmt.Errorf("node %d has neither an address nor a name", i)
		case n.Addr.Zone() != "":
			return 0, fmt.Errorf("node %d: address %s has a zone, which the table does not store", i, n.Addr)
		case n.Addr.Is4():
			v6 = false
		default: // IPv6, including IPv4-mapped: kept as 16 bytes so it round-trips as such
			v4 = false
		}
		if n.Port != nodes[0].Port || n.Weight != nodes[0].Weight {
			v4, v6 = false, false
		}
	}
	switch {
	case v4:
		return fmtIPv4, nil
	case v6:
		return fmtIPv6, nil
	}
	return fmtMixed, nil
}

// appendBody appends the nodes (validated by checkNodes) in format.
func appendBody(b []byte, format uint64, nodes []Node) []byte {
	if format == fmtIPv4 {
		for _, n := range nodes {
			a := n.Addr.As4()
			b = append(b, a[:]...)
		}
		return b
	}
	if format == fmtIPv6 {
		for _, n := range nodes {
			a := n.Addr.As16()
			b = append(b, a[:]...)
		}
		return b
	}
	port, weight := nodes[0].Port, nodes[0].Weight // the header's
	for _, n := range nodes {
		var flags byte
		if n.Port == port {
			flags |= flagSamePt
		}
		if n.Weight == weight {
			flags |= flagSameWt
		}
		port, weight = n.Port, n.Weight
		switch {
		case n.Name != "":
			b = append(b, flags|kindName, byte(len(n.Name)))
			b = append(b, n.Name...)
		case n.Addr.Is4():
			a := n.Addr.As4()
			b = append(b, flags|kindIPv4)
			b = append(b, a[:]...)
		default:
			a := n.Addr.As16()
			b = append(b, flags|kindIPv6)
			b = append(b, a[:]...)
		}
		if flags&flagSamePt == 0 {
			b = binary.LittleEndian.AppendUint16(b, n.Port)
		}
		if flags&flagSameWt == 0 {
			b = binary.AppendUvarint(b, uint64(n.Weight))
		}
	}
	return b
}
