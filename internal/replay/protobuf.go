package replay

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"mime"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// ContentTypeProtobuf is kube-apiserver's protobuf media type.
const ContentTypeProtobuf = "application/vnd.kubernetes.protobuf"

// Protobuf turns one object of the replay, given as its JSON, into the
// protobuf message that k8s.io/api's generated Marshal writes for it (the
// object alone: no envelope, no TypeMeta). The main module takes no
// k8s.io dependency, so the objects' encoder comes from outside
// (bench/clientgo/protoreplay: json.Unmarshal into the k8s.io/api type,
// then its Marshal, the code kube-apiserver itself runs). Package replay
// adds only the framing around those messages, as kube-apiserver writes
// it: the "k8s\x00" envelope (runtime.Unknown) of a response, the list
// (ListMeta, then the items), and the watch stream's frames (a 4-byte
// big-endian length, then a metav1.WatchEvent whose object is an
// enveloped object).
type Protobuf func(json []byte) ([]byte, error)

// pbBodies are the protobuf bodies, built once, as the JSON ones are.
type pbBodies struct {
	items    []byte // the list's items, each as field 2 of the list
	itemOff  []int
	initial  []byte // the streaming list's ADDED frames, then its bookmark frame
	events   []byte // the replay's frames, sentinel last
	eventAt  []int
	typeMeta []byte // runtime.TypeMeta of the list
}

// buildProtobuf transcodes every object with enc, on all CPUs.
func (s *Server) buildProtobuf(enc Protobuf) error {
	n := s.o.Services
	objs := make([]int, 0, n+len(s.eventAt)) // which JSON body each message comes from: i < n the list's
	jsonOf := func(k int) []byte {
		if k < n {
			return s.objs[s.objOff[k]:s.objOff[k+1]]
		}
		e := s.events[s.eventAt[k-n]:s.eventAt[k-n+1]]
		// {"type":"…","object":OBJECT}\n
		i := strings.Index(string(e), `"object":`)
		return e[i+len(`"object":`) : len(e)-2]
	}
	for k := range n + len(s.eventAt) - 1 {
		objs = append(objs, k)
	}
	bookmark := fmt.Appendf(nil, `{"kind":"%s","apiVersion":"%s","metadata":{"resourceVersion":"%d","annotations":{"k8s.io/initial-events-end":"true"}}}`,
		strings.TrimSuffix(s.kind, "List"), s.apiVer, s.o.Services)
	msgs := make([][]byte, len(objs)+1)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  = make(chan int, 1024)
	)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for k := range next {
				var m []byte
				var err error
				if k == len(objs) {
					m, err = enc(bookmark)
				} else {
					m, err = enc(jsonOf(objs[k]))
				}
				if err != nil {
					mu.Lock()
					first = cmp.Or(first, fmt.Errorf("replay: protobuf of object %d: %w", k, err))
					mu.Unlock()
				}
				msgs[k] = m
			}
		})
	}
	for k := range len(msgs) {
		next <- k
	}
	close(next)
	wg.Wait()
	if first != nil {
		return first
	}

	objType := appendTypeMeta(nil, s.apiVer, strings.TrimSuffix(s.kind, "List"))
	pb := &pbBodies{typeMeta: appendTypeMeta(nil, s.apiVer, s.kind)}
	pb.itemOff = make([]int, 0, n+1)
	for k := range n {
		pb.itemOff = append(pb.itemOff, len(pb.items))
		pb.items = appendBytesField(pb.items, 2, msgs[k])
	}
	pb.itemOff = append(pb.itemOff, len(pb.items))
	for k := range n {
		pb.initial = appendFrame(pb.initial, "ADDED", objType, msgs[k])
	}
	pb.initial = appendFrame(pb.initial, "BOOKMARK", objType, msgs[len(objs)])
	pb.eventAt = make([]int, 0, len(s.eventAt))
	for i := range len(s.eventAt) - 1 {
		pb.eventAt = append(pb.eventAt, len(pb.events))
		typ := "MODIFIED"
		if i == len(s.eventAt)-2 {
			typ = "ADDED" // the sentinel
		}
		pb.events = appendFrame(pb.events, typ, objType, msgs[n+i])
	}
	pb.eventAt = append(pb.eventAt, len(pb.events))
	s.pb = pb
	return nil
}

func appendVarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

// appendBytesField appends a length-delimited field (wire type 2).
func appendBytesField(b []byte, field int, v []byte) []byte {
	b = appendVarint(b, uint64(field)<<3|2)
	b = appendVarint(b, uint64(len(v)))
	return append(b, v...)
}

// appendTypeMeta appends a runtime.TypeMeta message: apiVersion = 1, kind = 2.
func appendTypeMeta(b []byte, apiVersion, kind string) []byte {
	b = appendBytesField(b, 1, []byte(apiVersion))
	return appendBytesField(b, 2, []byte(kind))
}

// envelopeHead appends the start of kube-apiserver's protobuf envelope,
// "k8s\x00" and a runtime.Unknown up to its raw bytes (typeMeta = 1, raw =
// 2), for a raw message of rawLen bytes; envelopeTail ends it with
// contentEncoding = 3 and contentType = 4, both empty, as the generated
// Marshal writes them.
func envelopeHead(b, typeMeta []byte, rawLen int) []byte {
	b = append(b, "k8s\x00"...)
	b = appendBytesField(b, 1, typeMeta)
	b = appendVarint(b, 2<<3|2)
	return appendVarint(b, uint64(rawLen))
}

const envelopeTail = "\x1a\x00\x22\x00"

// appendFrame appends one frame of a protobuf watch stream: its length,
// 4 bytes big-endian, then a metav1.WatchEvent (type = 1, object = 2, a
// runtime.RawExtension whose raw = 1 holds the enveloped object).
func appendFrame(b []byte, typ string, typeMeta, msg []byte) []byte {
	obj := envelopeHead(nil, typeMeta, len(msg))
	obj = append(obj, msg...)
	obj = append(obj, envelopeTail...)
	var ev []byte
	ev = appendBytesField(ev, 1, []byte(typ))
	ev = appendBytesField(ev, 2, appendBytesField(nil, 1, obj))
	b = binary.BigEndian.AppendUint32(b, uint32(len(ev)))
	return append(b, ev...)
}

// listMeta is a metav1.ListMeta: selfLink = 1, resourceVersion = 2,
// continue = 3 (the first three always written), remainingItemCount = 4
// when set.
func listMeta(rv int, cont string, remaining int) []byte {
	b := appendBytesField(nil, 1, nil)
	b = appendBytesField(b, 2, strconv.AppendInt(nil, int64(rv), 10))
	b = appendBytesField(b, 3, []byte(cont))
	if cont != "" {
		b = appendVarint(b, 4<<3)
		b = appendVarint(b, uint64(remaining))
	}
	return b
}

// wantsProtobuf reads an Accept header as kube-apiserver does: the media
// ranges by quality (highest first, the header's order among equals), the
// first one served wins; protobuf is served only when this server has it.
// ok is false when nothing in the header is served (406).
func (s *Server) wantsProtobuf(accept string) (protobuf, ok bool) {
	if strings.TrimSpace(accept) == "" {
		return false, true
	}
	type rng struct {
		typ string
		q   float64
	}
	var rs []rng
	for part := range strings.SplitSeq(accept, ",") {
		typ, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if v, ok := params["q"]; ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		if q > 0 {
			rs = append(rs, rng{typ, q})
		}
	}
	sort.SliceStable(rs, func(i, j int) bool { return rs[i].q > rs[j].q })
	for _, r := range rs {
		switch r.typ {
		case ContentTypeProtobuf:
			if s.pb != nil {
				return true, true
			}
		case "application/json", "application/*", "*/*":
			return false, true
		}
	}
	return false, false
}
