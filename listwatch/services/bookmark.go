package services

import (
	"strings"

	"github.com/kdisc/kdisc/internal/jsonscan"
	"github.com/kdisc/kdisc/internal/protowire"
)

// InitialEventsEndAnnotation marks the bookmark that ends the initial
// events of a streaming list.
const InitialEventsEndAnnotation = "k8s.io/initial-events-end"

// ReadBookmark reads a BOOKMARK event's object (protobuf in its envelope,
// or JSON): its resourceVersion (a copy), and whether it ends the initial
// events of a streaming list.
func ReadBookmark(raw []byte, proto bool) (rv string, end bool, err error) {
	if proto {
		return readProtoBookmark(raw)
	}
	var s jsonscan.Scanner
	s.Reset(raw)
	for ok := s.Open('{'); ok; ok = s.More('}') {
		if s.Key() != "metadata" {
			s.Skip()
			continue
		}
		for ok := s.Open('{'); ok; ok = s.More('}') {
			switch s.Key() {
			case "resourceVersion":
				rv = strings.Clone(s.Str()) // kept: the raw bytes are reused
			case "annotations":
				for ok := s.Open('{'); ok; ok = s.More('}') {
					if s.Key() == InitialEventsEndAnnotation {
						end = s.OptStr() == "true"
					} else {
						s.Skip()
					}
				}
			default:
				s.Skip()
			}
		}
	}
	s.End()
	if s.Err() != nil {
		return "", false, s.Err()
	}
	return rv, end, nil
}

// readProtoBookmark is ReadBookmark for a protobuf object.
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
				if k, v := readMapEntry(&d); k == InitialEventsEndAnnotation {
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
