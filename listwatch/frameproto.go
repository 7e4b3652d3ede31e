package listwatch

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/kdisc/kdisc/internal/jsonscan"
	"github.com/kdisc/kdisc/internal/protowire"
)

// The protobuf frame readers: a LIST answer's items and a watch stream's
// events (application/vnd.kubernetes.protobuf, with internal/protowire),
// by the field numbers of apimachinery's generated.proto (meta/v1
// ListMeta, WatchEvent; runtime.Unknown, RawExtension). They hand over each
// object in its "k8s\x00" envelope, as the apiserver writes it in a watch
// event: a list item, which the apiserver writes bare, is given one
// (protowire.EnvelopeHeader). Objects are decoded by the sink.

// Field numbers read (everything else is skipped by its wire type).
const (
	fieldListMetadata = 1 // EndpointsList, EndpointSliceList
	fieldListItems    = 2

	// meta/v1 ListMeta.
	listMetaResourceVersion = 2
	listMetaContinue        = 3

	// meta/v1 WatchEvent, runtime.RawExtension.
	watchEventType   = 1
	watchEventObject = 2
	rawExtensionRaw  = 1
)

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
		case fieldListMetadata, fieldListItems:
			n, err := pr.Length(left)
			if err != nil {
				return buf, jsonscan.UnexpectedEOF(err)
			}
			b, err := pr.Next(int(n))
			if err != nil {
				return buf, jsonscan.UnexpectedEOF(err)
			}
			if field == fieldListMetadata {
				if err := readProtoListMeta(b, page); err != nil {
					return buf, err
				}
				continue
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
	// Reads of 64 KiB: a backlog (a streaming list, a burst) takes a
	// quarter of the read calls of 16 KiB ones; at 50k EndpointSlices the
	// reads were 18% of kdisc's CPU (perf), and this took 8% off it.
	return &protoEventReader{r: protowire.NewReader(r, 64<<10, jsonscan.MaxFrame)}
}

// next reads the next event into ev; ev.Object aliases the reader's
// buffer, valid until the next call. io.EOF: the stream ended cleanly
// between events.
func (er *protoEventReader) next(ev *Event) error {
	frame, err := er.r.Frame()
	if err != nil {
		return err
	}
	d := &er.d
	d.Reset(frame)
	ev.Type, ev.Object, ev.Proto = "", nil, true
	for d.Next(d.Len()) {
		switch d.Field() {
		case watchEventType:
			ev.Type = eventType(d.String())
		case watchEventObject:
			end := d.Message()
			for d.Next(end) {
				if d.Field() == rawExtensionRaw {
					ev.Object = d.Raw()
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
	if ev.Type == "" || len(ev.Object) == 0 {
		return errors.New("watch stream: event without type or object")
	}
	return nil
}
