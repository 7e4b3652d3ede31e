package services

import (
	"strings"

	"github.com/kdisc/kdisc/internal/protowire"
)

// The protobuf decoders: the same objects as the JSON ones of decode.go,
// read from application/vnd.kubernetes.protobuf with internal/protowire, by
// the field numbers of k8s.io/api's generated.proto (core/v1 Endpoints,
// discovery/v1 EndpointSlice) and apimachinery's (meta/v1 ObjectMeta).
// What they produce is exactly what the JSON decoders produce, so the rest
// of the package is shared.
//
// An object comes as the apiserver writes it in a watch event: the
// "k8s\x00" envelope (runtime.Unknown) around the message. A list item,
// which the apiserver writes bare, is given the same envelope by the
// frame reader (protowire.EnvelopeHeader).

// Field numbers read (everything else is skipped by its wire type).
const (
	// Endpoints and EndpointSlice (metadata is 1 in every object).
	fieldMetadata    = 1
	fieldSubsets     = 2 // Endpoints
	fieldEndpoints   = 2 // EndpointSlice
	fieldSlicePorts  = 3 // EndpointSlice
	fieldAddressType = 4 // EndpointSlice

	// meta/v1 ObjectMeta.
	metaName            = 1
	metaNamespace       = 3
	metaResourceVersion = 6
	metaLabels          = 11
	metaAnnotations     = 12
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

// readMapEntry reads one portEntry of a map<string, string>: key 1, value 2,
// either absent meaning "".
func readMapEntry(d *protowire.Decoder) (key, value string) { return d.StringPair() }

// readProtoSubset reads a v1 EndpointSubset: addresses (1) and ports (3);
// notReadyAddresses (2) are not served.
func readProtoSubset(d *protowire.Decoder, sub *subset, detail bool) {
	end := d.Message()
	for d.Next(end) {
		switch d.Field() {
		case 1:
			var info placement
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
	var info placement
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
func readProtoTargetRef(d *protowire.Decoder, info *placement) {
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
