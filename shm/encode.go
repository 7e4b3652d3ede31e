package shm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Record encoding (writer side). A record is one service:
//
//	word 0:  keyLen uint16 | valLen uint32 | nPorts uint16   (little-endian)
//	key:     keyLen bytes, starting word-aligned (compared a word at a time)
//	value:   nPorts times:
//	           nameLen u8, name, bodyLen uvarint, nNodes uvarint, nodes
//	         (bodyLen covers nNodes and the nodes, so a reader skips a port
//	         it does not want without decoding it)
//	padding: to a multiple of 8 bytes
//
// A node is a flags byte, then its host, then port and weight unless they
// repeat the previous node's (they usually do: one port number and the
// default weight for every address):
//
//	flags:  bits 0-1 kind (0 IPv4, 1 IPv6, 2 DNS name); bit 2 same port;
//	        bit 3 same weight
//	host:   4 bytes | 16 bytes | nameLen u8 + name
//	port:   uint16 little-endian, unless same
//	weight: uvarint, unless same
//
// A service of 3 IPv4 nodes on one port costs 18 bytes of nodes.
const (
	kindIPv4   = 0
	kindIPv6   = 1
	kindName   = 2
	kindMask   = 3
	flagSamePt = 4
	flagSameWt = 8

	recHeaderBytes = 8

	// MaxKeyLen is the longest key (a Kubernetes namespace and name are at
	// most 63 and 253 bytes; leave room).
	MaxKeyLen = 1024
	// MaxNameLen is the longest port name and DNS name.
	MaxNameLen = 255
)

var errEmptyKey = errors.New("shm: empty key")

// appendRecord appends the record for key and ports to b, padded to 8 bytes.
func appendRecord(b []byte, key string, ports []Port) ([]byte, error) {
	if key == "" {
		return b, errEmptyKey
	}
	if len(key) > MaxKeyLen {
		return b, fmt.Errorf("shm: key %.40q... is %d bytes, longer than %d", key, len(key), MaxKeyLen)
	}
	if len(ports) > math.MaxUint16 {
		return b, fmt.Errorf("shm: %s: %d ports, more than %d", key, len(ports), math.MaxUint16)
	}
	start := len(b)
	b = append(b, make([]byte, recHeaderBytes)...)
	b = append(b, key...)
	for len(b)%8 != 0 { // key words are compared whole: pad the last one
		b = append(b, 0)
	}
	valStart := len(b)
	var err error
	for _, p := range ports {
		if len(p.Name) > MaxNameLen {
			return b[:start], fmt.Errorf("shm: %s: port name %.40q... longer than %d bytes", key, p.Name, MaxNameLen)
		}
		b = append(b, byte(len(p.Name)))
		b = append(b, p.Name...)
		body := appendNodes(nil, p.Nodes, &err)
		if err != nil {
			return b[:start], fmt.Errorf("shm: %s port %q: %w", key, p.Name, err)
		}
		b = binary.AppendUvarint(b, uint64(len(body)))
		b = append(b, body...)
	}
	valLen := len(b) - valStart
	if valLen > math.MaxUint32 {
		return b[:start], fmt.Errorf("shm: %s: value of %d bytes is too large", key, valLen)
	}
	h := uint64(len(key)) | uint64(valLen)<<16 | uint64(len(ports))<<48
	binary.LittleEndian.PutUint64(b[start:], h)
	for len(b)%8 != 0 {
		b = append(b, 0)
	}
	return b, nil
}

// keyPad is where the value starts relative to the key: keys are padded to
// whole words.
func keyPad(keyLen uint64) uint64 { return (keyLen + 7) &^ 7 }

func appendNodes(b []byte, nodes []Node, errp *error) []byte {
	b = binary.AppendUvarint(b, uint64(len(nodes)))
	var port uint16
	var weight uint32
	for i, n := range nodes {
		var flags byte
		if i > 0 && n.Port == port {
			flags |= flagSamePt
		}
		if i > 0 && n.Weight == weight {
			flags |= flagSameWt
		}
		port, weight = n.Port, n.Weight
		switch {
		case n.Name != "":
			if n.Addr.IsValid() {
				*errp = fmt.Errorf("node %d has both a name (%q) and an address (%s)", i, n.Name, n.Addr)
				return b
			}
			if len(n.Name) > MaxNameLen {
				*errp = fmt.Errorf("node %d: name %.40q... longer than %d bytes", i, n.Name, MaxNameLen)
				return b
			}
			b = append(b, flags|kindName, byte(len(n.Name)))
			b = append(b, n.Name...)
		case !n.Addr.IsValid():
			*errp = fmt.Errorf("node %d has neither an address nor a name", i)
			return b
		case n.Addr.Zone() != "":
			*errp = fmt.Errorf("node %d: address %s has a zone, which the table does not store", i, n.Addr)
			return b
		case n.Addr.Is4():
			a := n.Addr.As4()
			b = append(b, flags|kindIPv4)
			b = append(b, a[:]...)
		default: // IPv6, including IPv4-mapped: kept as 16 bytes so it round-trips as such
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
