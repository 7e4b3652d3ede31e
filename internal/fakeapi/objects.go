package fakeapi

import (
	"crypto/sha1"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// The types below mirror k8s.io/api core/v1 Endpoints and discovery/v1
// EndpointSlice closely enough that encoding/json produces the same bytes
// as the real apiserver: same field order, same omitempty choices (an
// EndpointSlice endpoint's conditions is a struct and so always encoded,
// "conditions":{} when empty; endpoints and ports are never omitted and
// encode as null when nil). They exist to build test objects; kdisc itself
// must not depend on them.

// ObjectMeta is metav1.ObjectMeta, the subset Endpoints objects carry.
type ObjectMeta struct {
	Name              string               `json:"name,omitempty"`
	GenerateName      string               `json:"generateName,omitempty"`
	Namespace         string               `json:"namespace,omitempty"`
	UID               string               `json:"uid,omitempty"`
	ResourceVersion   string               `json:"resourceVersion,omitempty"`
	Generation        int64                `json:"generation,omitempty"`
	CreationTimestamp string               `json:"creationTimestamp,omitempty"`
	Labels            map[string]string    `json:"labels,omitempty"`
	Annotations       map[string]string    `json:"annotations,omitempty"`
	OwnerReferences   []OwnerReference     `json:"ownerReferences,omitempty"`
	ManagedFields     []ManagedFieldsEntry `json:"managedFields,omitempty"`
}

// OwnerReference is metav1.OwnerReference.
type OwnerReference struct {
	APIVersion         string `json:"apiVersion"`
	Kind               string `json:"kind"`
	Name               string `json:"name"`
	UID                string `json:"uid"`
	Controller         *bool  `json:"controller,omitempty"`
	BlockOwnerDeletion *bool  `json:"blockOwnerDeletion,omitempty"`
}

// ManagedFieldsEntry is metav1.ManagedFieldsEntry; FieldsV1 is the raw blob.
type ManagedFieldsEntry struct {
	Manager     string          `json:"manager,omitempty"`
	Operation   string          `json:"operation,omitempty"`
	APIVersion  string          `json:"apiVersion,omitempty"`
	Time        string          `json:"time,omitempty"`
	FieldsType  string          `json:"fieldsType,omitempty"`
	FieldsV1    json.RawMessage `json:"fieldsV1,omitempty"`
	Subresource string          `json:"subresource,omitempty"`
}

// ObjectReference is corev1.ObjectReference (an endpoint's targetRef).
type ObjectReference struct {
	Kind            string `json:"kind,omitempty"`
	Namespace       string `json:"namespace,omitempty"`
	Name            string `json:"name,omitempty"`
	UID             string `json:"uid,omitempty"`
	APIVersion      string `json:"apiVersion,omitempty"`
	ResourceVersion string `json:"resourceVersion,omitempty"`
	FieldPath       string `json:"fieldPath,omitempty"`
}

// Endpoints is core/v1 Endpoints. Kind and APIVersion are set by the
// server on the wire (watch events, GET) and dropped in list items.
type Endpoints struct {
	Kind       string           `json:"kind,omitempty"`
	APIVersion string           `json:"apiVersion,omitempty"`
	Metadata   ObjectMeta       `json:"metadata"`
	Subsets    []EndpointSubset `json:"subsets,omitempty"`
}

// EndpointSubset is corev1.EndpointSubset.
type EndpointSubset struct {
	Addresses         []EndpointAddress `json:"addresses,omitempty"`
	NotReadyAddresses []EndpointAddress `json:"notReadyAddresses,omitempty"`
	Ports             []EndpointPort    `json:"ports,omitempty"`
}

// EndpointAddress is corev1.EndpointAddress.
type EndpointAddress struct {
	IP        string           `json:"ip"`
	Hostname  string           `json:"hostname,omitempty"`
	NodeName  *string          `json:"nodeName,omitempty"`
	TargetRef *ObjectReference `json:"targetRef,omitempty"`
}

// EndpointPort is corev1.EndpointPort: Name is omitted when unnamed.
type EndpointPort struct {
	Name        string  `json:"name,omitempty"`
	Port        int32   `json:"port"`
	Protocol    string  `json:"protocol,omitempty"`
	AppProtocol *string `json:"appProtocol,omitempty"`
}

// EndpointSlice is discovery/v1 EndpointSlice.
type EndpointSlice struct {
	Kind        string              `json:"kind,omitempty"`
	APIVersion  string              `json:"apiVersion,omitempty"`
	Metadata    ObjectMeta          `json:"metadata"`
	AddressType string              `json:"addressType"`
	Endpoints   []Endpoint          `json:"endpoints"`
	Ports       []EndpointSlicePort `json:"ports"`
}

// Endpoint is discoveryv1.Endpoint.
type Endpoint struct {
	Addresses          []string           `json:"addresses"`
	Conditions         EndpointConditions `json:"conditions,omitempty"`
	Hostname           *string            `json:"hostname,omitempty"`
	TargetRef          *ObjectReference   `json:"targetRef,omitempty"`
	DeprecatedTopology map[string]string  `json:"deprecatedTopology,omitempty"`
	NodeName           *string            `json:"nodeName,omitempty"`
	Zone               *string            `json:"zone,omitempty"`
	Hints              *EndpointHints     `json:"hints,omitempty"`
}

// EndpointConditions is discoveryv1.EndpointConditions: nil Ready means
// ready, nil Serving means serving, nil Terminating means not terminating.
type EndpointConditions struct {
	Ready       *bool `json:"ready,omitempty"`
	Serving     *bool `json:"serving,omitempty"`
	Terminating *bool `json:"terminating,omitempty"`
}

// EndpointHints is discoveryv1.EndpointHints.
type EndpointHints struct {
	ForZones []ForName `json:"forZones,omitempty"`
	ForNodes []ForName `json:"forNodes,omitempty"`
}

// ForName is discoveryv1.ForZone / ForNode.
type ForName struct {
	Name string `json:"name"`
}

// EndpointSlicePort is discoveryv1.EndpointPort. The EndpointSlice
// controller writes Name as "" (not absent) for an unnamed service port.
type EndpointSlicePort struct {
	Name        *string `json:"name,omitempty"`
	Protocol    *string `json:"protocol,omitempty"`
	Port        *int32  `json:"port,omitempty"`
	AppProtocol *string `json:"appProtocol,omitempty"`
}

// Ptr returns a pointer to v, for the optional fields above.
func Ptr[T any](v T) *T { return &v }

// object is what the store needs from either type.
type object interface {
	meta() *ObjectMeta
	setType(kind, apiVersion string)
	setDefaults()
	validate() []fieldError
}

func (e *Endpoints) meta() *ObjectMeta { return &e.Metadata }
func (e *Endpoints) setType(kind, apiVersion string) {
	e.Kind, e.APIVersion = kind, apiVersion
}
func (e *EndpointSlice) meta() *ObjectMeta { return &e.Metadata }
func (e *EndpointSlice) setType(kind, apiVersion string) {
	e.Kind, e.APIVersion = kind, apiVersion
}

// resource describes one served resource type.
type resource struct {
	name       string // plural, as in the URL: "endpoints"
	group      string // "" for core
	apiVersion string
	kind       string
	newObject  func() object
}

var (
	resEndpoints = &resource{
		name: EndpointsResource, apiVersion: "v1", kind: "Endpoints",
		newObject: func() object { return new(Endpoints) },
	}
	resEndpointSlices = &resource{
		name: EndpointSlicesResource, group: "discovery.k8s.io",
		apiVersion: "discovery.k8s.io/v1", kind: "EndpointSlice",
		newObject: func() object { return new(EndpointSlice) },
	}
)

// groupResource is how the real server names a resource in messages:
// "endpoints", "endpointslices.discovery.k8s.io".
func (r *resource) groupResource() string {
	if r.group == "" {
		return r.name
	}
	return r.name + "." + r.group
}

// fakeUID derives a stable, real-looking UID so fixtures and tests are
// reproducible.
func fakeUID(parts ...string) string {
	h := sha1.Sum([]byte(strings.Join(parts, "/")))
	x := fmt.Sprintf("%x", h[:16])
	return x[0:8] + "-" + x[8:12] + "-4" + x[13:16] + "-a" + x[17:20] + "-" + x[20:32]
}

// defaultManagedFields is the entry kube-controller-manager leaves on the
// objects it writes, so objects built in Go look like real ones.
func defaultManagedFields(res *resource, m *ObjectMeta) []ManagedFieldsEntry {
	var b strings.Builder
	b.WriteString(`{`)
	if res == resEndpointSlices {
		b.WriteString(`"f:addressType":{},"f:endpoints":{},`)
	}
	// Only fields that are set appear: no "f:metadata" without labels or
	// annotations.
	fieldSet := func(name string, m map[string]string) string {
		if len(m) == 0 {
			return ""
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var f strings.Builder
		f.WriteString(`"f:` + name + `":{".":{}`)
		for _, k := range keys {
			kb, _ := json.Marshal("f:" + k)
			f.WriteByte(',')
			f.Write(kb)
			f.WriteString(`:{}`)
		}
		f.WriteString(`}`)
		return f.String()
	}
	var metaFields []string
	for _, f := range []string{fieldSet("annotations", m.Annotations), fieldSet("labels", m.Labels)} {
		if f != "" {
			metaFields = append(metaFields, f)
		}
	}
	if len(metaFields) > 0 {
		b.WriteString(`"f:metadata":{` + strings.Join(metaFields, ",") + `},`)
	}
	if res == resEndpointSlices {
		b.WriteString(`"f:ports":{}`)
	} else {
		b.WriteString(`"f:subsets":{}`)
	}
	b.WriteString(`}`)
	return []ManagedFieldsEntry{{
		Manager:    "kube-controller-manager",
		Operation:  "Update",
		APIVersion: res.apiVersion,
		Time:       m.CreationTimestamp,
		FieldsType: "FieldsV1",
		FieldsV1:   json.RawMessage(b.String()),
	}}
}

// NewEndpoints builds an Endpoints ns/name whose ready addresses ips serve
// one TCP port named portName (no subset at all when ips is empty, as the
// apiserver stores a service scaled to zero).
func NewEndpoints(ns, name, portName string, port int32, ips ...string) *Endpoints {
	e := &Endpoints{Metadata: ObjectMeta{Namespace: ns, Name: name}}
	if len(ips) == 0 {
		return e
	}
	sub := EndpointSubset{Ports: []EndpointPort{{Name: portName, Port: port, Protocol: "TCP"}}}
	for _, ip := range ips {
		sub.Addresses = append(sub.Addresses, EndpointAddress{IP: ip})
	}
	e.Subsets = []EndpointSubset{sub}
	return e
}
