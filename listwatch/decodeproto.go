package listwatch

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strings"

	jsoniter "github.com/json-iterator/go"

	"github.com/kdisc/kdisc/apiserver"
	"github.com/kdisc/kdisc/internal/jsonscan"
	"github.com/kdisc/kdisc/internal/protowire"
)

// The protobuf decoders: the same objects, list pages and watch events as
// the JSON ones of decode.go, read from application/vnd.kubernetes.protobuf
// with internal/protowire, by the field numbers of k8s.io/api's
// generated.proto (core/v1 Endpoints, discovery/v1 EndpointSlice) and
// apimachinery's (meta/v1 ObjectMeta, ListMeta, WatchEvent, Status). What
// they produce is exactly what the JSON decoders produce, so the rest of
// the pipeline is shared.
//
// An object travels through ListerWatcher as the apiserver writes it in a
// watch event: the "k8s\x00" envelope (runtime.Unknown) around the
// message. A list item, which the apiserver writes bare, is given the same
// envelope (protowire.EnvelopeHeader): so one raw object is JSON or
// protobuf by its first bytes, and every decoder can tell which it holds.

// Field numbers read (everything else is skipped by its wire type).
const (
	// Endpoints and EndpointSlice (metadata is 1 in every object).
	fieldMetadata     = 1
	fieldSubsets      = 2 // Endpoints
	fieldEndpoints    = 2 // EndpointSlice
	fieldSlicePorts   = 3 // EndpointSlice
	fieldAddressType  = 4 // EndpointSlice
	fieldListMetadata = 1 // EndpointsList, EndpointSliceList
	fieldListItems    = 2

	// meta/v1 ObjectMeta.
	metaName            = 1
	metaNamespace       = 3
	metaResourceVersion = 6
	metaLabels          = 11
	metaAnnotations     = 12

	// meta/v1 ListMeta.
	listMetaResourceVersion = 2
	listMetaContinue        = 3

	// meta/v1 WatchEvent, runtime.RawExtension.
	watchEventType   = 1
	watchEventObject = 2
	rawExtensionRaw  = 1
)

// decodeProtoObject reads one Endpoints (slices false) or EndpointSlice
// from its envelope, as decodeObjectDetail reads one from JSON.
func decodeProtoObject(d *protowire.Decoder, env []byte, o *object, slices, detail bool) error {
	o.reset()
	msg, err := protowire.Unwrap(env)
	if err != nil {
		return err
	}
	d.Reset(msg)
	for d.Next(d.Len()) {
		switch f := d.Field(); {
		case f == fieldMetadata:
			readProtoMeta(d, o)
		case f == fieldSubsets && !slices:
			readProtoSubset(d, o.newSubset(), detail)
		case f == fieldEndpoints && slices:
			readProtoEndpoint(d, o.newEndpoint(), detail)
		case f == fieldSlicePorts && slices:
			o.ports = append(o.ports, readProtoPort(d, 3))
		case f == fieldAddressType && slices:
			o.addressType = d.String()
		default:
			d.Skip()
		}
	}
	if err := d.Err(); err != nil {
		return err
	}
	if o.name == "" || o.namespace == "" {
		return errMalformed
	}
	return nil
}

// readProtoMeta reads an ObjectMeta; a second one merges into the first,
// as the format defines.
func readProtoMeta(d *protowire.Decoder, o *object) {
	end := d.Message()
	for d.Next(end) {
		switch d.Field() {
		case metaName:
			o.name = d.String()
		case metaNamespace:
			o.namespace = d.String()
		case metaResourceVersion:
			o.resourceVersion = d.String()
		case metaLabels:
			if k, v := readMapEntry(d); k == serviceNameLabel {
				o.serviceName = v
			}
		case metaAnnotations:
			if k, v := readMapEntry(d); k == overCapacityAnnotation {
				o.truncated = v == "truncated"
			}
		default:
			d.Skip() // managedFields, ownerReferences, ...
		}
	}
}

// readMapEntry reads one entry of a map<string, string>: key 1, value 2,
// either absent meaning "".
func readMapEntry(d *protowire.Decoder) (key, value string) {
	end := d.Message()
	for d.Next(end) {
		switch d.Field() {
		case 1:
			key = d.String()
		case 2:
			value = d.String()
		default:
			d.Skip()
		}
	}
	return key, value
}

// readProtoSubset reads a v1 EndpointSubset: addresses (1) and ports (3);
// notReadyAddresses (2) are not served.
func readProtoSubset(d *protowire.Decoder, sub *subset, detail bool) {
	end := d.Message()
	for d.Next(end) {
		switch d.Field() {
		case 1:
			var info nodeInfo
			ip := ""
			end := d.Message()
			for d.Next(end) {
				switch f := d.Field(); {
				case f == 1:
					ip = d.String()
				case detail && f == 2:
					readProtoTargetRef(d, &info)
				case detail && f == 4:
					info.nodeName = strings.Clone(d.String())
				default:
					d.Skip()
				}
			}
			sub.addresses = append(sub.addresses, ip)
			if detail {
				sub.infos = append(sub.infos, info.orNil())
			}
		case 3:
			sub.ports = append(sub.ports, readProtoPort(d, 2))
		default:
			d.Skip()
		}
	}
}

// readProtoPort reads a port's name (1) and number (numberField: 2 in
// v1 EndpointPort, 3 in discovery/v1's).
func readProtoPort(d *protowire.Decoder, numberField int32) port {
	var p port
	end := d.Message()
	for d.Next(end) {
		switch d.Field() {
		case 1:
			p.name = d.String()
		case numberField:
			p.number = d.Int32()
		default:
			d.Skip()
		}
	}
	return p
}

// readProtoEndpoint reads a discovery/v1 Endpoint.
func readProtoEndpoint(d *protowire.Decoder, e *endpoint, detail bool) {
	var info nodeInfo
	end := d.Message()
	for d.Next(end) {
		switch f := d.Field(); {
		case f == 1:
			e.addresses = append(e.addresses, d.String())
		case f == 2: // conditions: absent means ready, serving, not terminating
			end := d.Message()
			for d.Next(end) {
				switch d.Field() {
				case 1:
					e.ready = d.Bool()
				case 2:
					e.serving = d.Bool()
				case 3:
					e.terminating = d.Bool()
				default:
					d.Skip()
				}
			}
		case f == 8: // hints
			end := d.Message()
			for d.Next(end) {
				switch d.Field() {
				case 1:
					e.zones = append(e.zones, readProtoName(d))
				case 2:
					e.forNodes = append(e.forNodes, readProtoName(d))
				default:
					d.Skip()
				}
			}
		case detail && f == 4:
			readProtoTargetRef(d, &info)
		case detail && f == 6:
			info.nodeName = strings.Clone(d.String())
		case detail && f == 7:
			info.zone = strings.Clone(d.String())
		default:
			d.Skip()
		}
	}
	if detail {
		e.info = info.orNil()
	}
}

// readProtoName reads a ForZone or ForNode: its name (1).
func readProtoName(d *protowire.Decoder) string {
	name := ""
	end := d.Message()
	for d.Next(end) {
		if d.Field() == 1 {
			name = d.String()
		} else {
			d.Skip()
		}
	}
	return name
}

// readProtoTargetRef reads an ObjectReference's kind (1), name (3) and
// uid (4).
func readProtoTargetRef(d *protowire.Decoder, info *nodeInfo) {
	end := d.Message()
	for d.Next(end) {
		switch d.Field() {
		case 1:
			info.kind = strings.Clone(d.String())
		case 3:
			info.name = strings.Clone(d.String())
		case 4:
			info.uid = strings.Clone(d.String())
		default:
			d.Skip()
		}
	}
}

// readProtoList streams a protobuf LIST answer from r: the envelope, whose
// raw field is the list message, read field by field so that only one
// item is held at a time. item is called with each item in an envelope
// (valid only during the call).
func readProtoList(r io.Reader, item func(raw []byte)) (listPage, error) {
	var page listPage
	pr := protowire.NewReader(r, 32<<10, jsonscan.MaxFrame)
	magic, err := pr.Next(len(protowire.Magic))
	if err != nil {
		return page, jsonscan.UnexpectedEOF(err)
	}
	if string(magic) != protowire.Magic {
		return page, fmt.Errorf("protobuf list: no k8s envelope (starts %q)", magic)
	}
	sawList := false
	var buf []byte // an item with its envelope, reused
	for {
		field, typ, err := pr.Tag()
		if err == io.EOF {
			break
		}
		if err != nil {
			return page, err
		}
		switch {
		case field == 2 && typ == protowire.Bytes: // runtime.Unknown.raw: the list
			if sawList {
				return page, errors.New("protobuf list: two lists in one envelope")
			}
			sawList = true
			n, err := pr.Length(math.MaxInt64)
			if err != nil {
				return page, jsonscan.UnexpectedEOF(err)
			}
			if buf, err = readProtoListFields(pr, pr.Consumed()+n, &page, buf, item); err != nil {
				return page, err
			}
		case field == 3 && typ == protowire.Bytes: // contentEncoding
			n, err := pr.Length(math.MaxInt64)
			if err != nil {
				return page, jsonscan.UnexpectedEOF(err)
			}
			b, err := pr.Next(int(min(n, math.MaxInt32)))
			if err != nil {
				return page, jsonscan.UnexpectedEOF(err)
			}
			if len(b) > 0 {
				return page, fmt.Errorf("protobuf list: unsupported content encoding %q", b)
			}
		case field == 2 || field == 3:
			return page, fmt.Errorf("protobuf list: envelope field %d has wire type %d", field, typ)
		default: // typeMeta, contentType
			if err := pr.Skip(typ, math.MaxInt64); err != nil {
				return page, jsonscan.UnexpectedEOF(err)
			}
		}
	}
	if page.resourceVersion == "" {
		return page, errors.New("list answer has no metadata.resourceVersion")
	}
	return page, nil
}

// readProtoListFields reads the fields of a list message that ends at end
// (a count of bytes consumed): its ListMeta and items.
func readProtoListFields(pr *protowire.Reader, end int64, page *listPage, buf []byte, item func([]byte)) ([]byte, error) {
	for pr.Consumed() < end {
		field, typ, err := pr.Tag()
		if err != nil {
			return buf, jsonscan.UnexpectedEOF(err)
		}
		left := end - pr.Consumed()
		if left < 0 {
			return buf, protowire.ErrTruncated
		}
		if (field == fieldListMetadata || field == fieldListItems) && typ != protowire.Bytes {
			return buf, fmt.Errorf("protobuf list: field %d has wire type %d", field, typ)
		}
		switch field {
		case fieldListMetadata:
			n, err := pr.Length(left)
			if err != nil {
				return buf, jsonscan.UnexpectedEOF(err)
			}
			b, err := pr.Next(int(n))
			if err != nil {
				return buf, jsonscan.UnexpectedEOF(err)
			}
			if err := readProtoListMeta(b, page); err != nil {
				return buf, err
			}
		case fieldListItems:
			n, err := pr.Length(left)
			if err != nil {
				return buf, jsonscan.UnexpectedEOF(err)
			}
			b, err := pr.Next(int(n))
			if err != nil {
				return buf, jsonscan.UnexpectedEOF(err)
			}
			buf = append(protowire.EnvelopeHeader(buf[:0], len(b)), b...)
			item(buf)
		default:
			if err := pr.Skip(typ, left); err != nil {
				return buf, jsonscan.UnexpectedEOF(err)
			}
		}
	}
	if pr.Consumed() != end {
		return buf, protowire.ErrTruncated
	}
	return buf, nil
}

func readProtoListMeta(b []byte, page *listPage) error {
	var d protowire.Decoder
	d.Reset(b)
	for d.Next(d.Len()) {
		switch d.Field() {
		case listMetaResourceVersion:
			page.resourceVersion = strings.Clone(d.String())
		case listMetaContinue:
			page.continueToken = strings.Clone(d.String())
		default:
			d.Skip()
		}
	}
	return d.Err()
}

// protoEventReader reads the events of a protobuf watch stream: frames of
// a 4-byte big-endian length and a meta/v1 WatchEvent, whose object is an
// envelope.
type protoEventReader struct {
	r *protowire.Reader
	d protowire.Decoder
}

func newProtoEventReader(r io.Reader) *protoEventReader {
	return &protoEventReader{r: protowire.NewReader(r, 16<<10, jsonscan.MaxFrame)}
}

// next reads the next event into ev; ev.object aliases the reader's
// buffer, valid until the next call. io.EOF: the stream ended cleanly
// between events.
func (er *protoEventReader) next(ev *event) error {
	frame, err := er.r.Frame()
	if err != nil {
		return err
	}
	d := &er.d
	d.Reset(frame)
	ev.typ, ev.object = "", nil
	for d.Next(d.Len()) {
		switch d.Field() {
		case watchEventType:
			ev.typ = eventType(d.String())
		case watchEventObject:
			end := d.Message()
			for d.Next(end) {
				if d.Field() == rawExtensionRaw {
					ev.object = d.Raw()
				} else {
					d.Skip()
				}
			}
		default:
			d.Skip()
		}
	}
	if err := d.Err(); err != nil {
		return fmt.Errorf("watch stream: %w", err)
	}
	if ev.typ == "" || len(ev.object) == 0 {
		return errors.New("watch stream: event without type or object")
	}
	return nil
}

// readProtoBookmark is readBookmark for a protobuf object.
func readProtoBookmark(env []byte) (rv string, end bool, err error) {
	msg, err := protowire.Unwrap(env)
	if err != nil {
		return "", false, err
	}
	var d protowire.Decoder
	d.Reset(msg)
	for d.Next(d.Len()) {
		if d.Field() != fieldMetadata {
			d.Skip()
			continue
		}
		mend := d.Message()
		for d.Next(mend) {
			switch d.Field() {
			case metaResourceVersion:
				rv = strings.Clone(d.String())
			case metaAnnotations:
				if k, v := readMapEntry(&d); k == initialEventsEndAnnotation {
					end = v == "true"
				}
			default:
				d.Skip()
			}
		}
	}
	if err := d.Err(); err != nil {
		return "", false, err
	}
	return rv, end, nil
}

// readEventStatus reads the Status of a watch ERROR event (JSON or
// protobuf) into se and returns its code, 0 when absent.
func readEventStatus(raw []byte, se *apiserver.StatusError) int {
	if protowire.IsEnvelope(raw) {
		msg, err := protowire.Unwrap(raw)
		if err != nil {
			return 0
		}
		code, _ := apiserver.ReadStatusProto(msg, se)
		return code
	}
	return readJSONStatus(raw, se)
}

// readJSONStatus reads the JSON Status of a watch ERROR event into se and
// returns its code, 0 when absent.
func readJSONStatus(raw []byte, se *apiserver.StatusError) int {
	return apiserver.ReadStatus(jsoniter.ParseBytes(jsoniter.ConfigDefault, raw), se)
}
