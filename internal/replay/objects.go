package replay

import (
	"strconv"
)

// The objects are written with append and strconv, not fmt: building 250 MB
// of events for 200,000 EndpointSlices must take seconds, not minutes.

// service returns the namespace and name of service i.
func service(i int) (ns, name string) {
	return "team-" + strconv.Itoa(i%50), "service-" + strconv.Itoa(i)
}

// uid appends a UUID-shaped string that depends on prefix and n.
func uid(b []byte, prefix string, n int) []byte {
	b = append(b, prefix...)
	s := strconv.Itoa(n)
	for range 12 - len(s) {
		b = append(b, '0')
	}
	return append(b, s...)
}

// ip appends a 10.x.y.z address that moves with rv and seed: every event
// changes the addresses, so no client can skip it as a no-op. Addresses
// stay off loopback (the real apiserver refuses those).
func ip(b []byte, rv, seed, a int) []byte {
	b = append(b, "10."...)
	b = strconv.AppendInt(b, int64(rv%250), 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, int64(seed%250), 10)
	b = append(b, '.')
	return strconv.AppendInt(b, int64((seed+a)%250+1), 10)
}

const stamp = "2026-11-25T10:00:00Z"

// appendEndpoints appends an Endpoints object shaped as kube-controller-
// manager writes it: labels, the last-change-trigger-time annotation,
// managedFields, one subset of addrs addresses with nodeName and
// targetRef, one port. With 3 addresses it is about 1.2 KB.
func appendEndpoints(b []byte, ns, name string, rv, seed, addrs int) []byte {
	b = append(b, `{"kind":"Endpoints","apiVersion":"v1","metadata":{"name":"`...)
	b = append(b, name...)
	b = append(b, `","namespace":"`...)
	b = append(b, ns...)
	b = append(b, `","uid":"`...)
	b = uid(b, "5d3c1a9e-0b7f-4f7e-9a51-", seed)
	b = append(b, `","resourceVersion":"`...)
	b = strconv.AppendInt(b, int64(rv), 10)
	b = append(b, `","creationTimestamp":"`+stamp+`","labels":{"app":"`...)
	b = append(b, name...)
	b = append(b, `","app.kubernetes.io/managed-by":"helm","endpoints.kubernetes.io/managed-by":"endpoint-controller"},"annotations":{"endpoints.kubernetes.io/last-change-trigger-time":"`+stamp+`"},"managedFields":[{"manager":"kube-controller-manager","operation":"Update","apiVersion":"v1","time":"`+stamp+`","fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:annotations":{".":{},"f:endpoints.kubernetes.io/last-change-trigger-time":{}},"f:labels":{".":{},"f:app":{},"f:app.kubernetes.io/managed-by":{},"f:endpoints.kubernetes.io/managed-by":{}}},"f:subsets":{}}}]},"subsets":[{"addresses":[`...)
	for a := range addrs {
		if a > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"ip":"`...)
		b = ip(b, rv, seed, a)
		b = append(b, `","nodeName":"node-`...)
		b = strconv.AppendInt(b, int64(a), 10)
		b = appendPodRef(b, ns, name, seed, a)
		b = append(b, `"}}`...)
	}
	return append(b, `],"ports":[{"name":"http","port":8080,"protocol":"TCP"}]}]}`...)
}

// appendPodRef appends `","targetRef":{...,"uid":"…` for pod a of the
// service name (the caller closes the object).
func appendPodRef(b []byte, ns, name string, seed, a int) []byte {
	b = append(b, `","targetRef":{"kind":"Pod","namespace":"`...)
	b = append(b, ns...)
	b = append(b, `","name":"`...)
	b = append(b, name...)
	b = append(b, `-7d9f8-`...)
	b = strconv.AppendInt(b, int64(a), 10)
	b = append(b, `","uid":"`...)
	return uid(b, "a1b2c3d4-0000-0000-0000-", seed*8+a)
}

// appendSlice appends the one EndpointSlice of a service, shaped as the
// endpointslice controller writes it: generateName, the service-name and
// managed-by labels, an ownerReference, managedFields, addrs endpoints
// with conditions, nodeName, targetRef and zone, one port. With 3
// endpoints it is about 1.5 KB.
func appendSlice(b []byte, ns, name string, rv, seed, addrs int) []byte {
	b = append(b, `{"kind":"EndpointSlice","apiVersion":"discovery.k8s.io/v1","metadata":{"name":"`...)
	b = append(b, name...)
	b = append(b, `-x7k2p","generateName":"`...)
	b = append(b, name...)
	b = append(b, `-","namespace":"`...)
	b = append(b, ns...)
	b = append(b, `","uid":"`...)
	b = uid(b, "7e1f2a3b-4c5d-4e6f-8a9b-", seed)
	b = append(b, `","resourceVersion":"`...)
	b = strconv.AppendInt(b, int64(rv), 10)
	b = append(b, `","generation":1,"creationTimestamp":"`+stamp+`","labels":{"endpointslice.kubernetes.io/managed-by":"endpointslice-controller.k8s.io","kubernetes.io/service-name":"`...)
	b = append(b, name...)
	b = append(b, `"},"annotations":{"endpoints.kubernetes.io/last-change-trigger-time":"`+stamp+`"},"ownerReferences":[{"apiVersion":"v1","kind":"Service","name":"`...)
	b = append(b, name...)
	b = append(b, `","uid":"`...)
	b = uid(b, "0c9d8e7f-6a5b-4c3d-2e1f-", seed)
	b = append(b, `","controller":true,"blockOwnerDeletion":true}],"managedFields":[{"manager":"kube-controller-manager","operation":"Update","apiVersion":"discovery.k8s.io/v1","time":"`+stamp+`","fieldsType":"FieldsV1","fieldsV1":{"f:addressType":{},"f:endpoints":{},"f:metadata":{"f:annotations":{".":{},"f:endpoints.kubernetes.io/last-change-trigger-time":{}},"f:generateName":{},"f:labels":{".":{},"f:endpointslice.kubernetes.io/managed-by":{},"f:kubernetes.io/service-name":{}},"f:ownerReferences":{".":{},"k:{\"uid\":\"0c9d8e7f\"}":{}}},"f:ports":{}}}]},"addressType":"IPv4","endpoints":[`...)
	for a := range addrs {
		if a > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"addresses":["`...)
		b = ip(b, rv, seed, a)
		b = append(b, `"],"conditions":{"ready":true,"serving":true,"terminating":false},"nodeName":"node-`...)
		b = strconv.AppendInt(b, int64(a), 10)
		b = appendPodRef(b, ns, name, seed, a)
		b = append(b, `"},"zone":"zone-`...)
		b = append(b, byte('a'+a%3))
		b = append(b, `"}`...)
	}
	return append(b, `],"ports":[{"name":"http","protocol":"TCP","port":8080}]}`...)
}
