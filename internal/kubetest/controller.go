package kubetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
)

// The labels the endpointslice controller (kube-controller-manager) puts on
// the slices it manages.
const (
	ServiceNameLabel    = "kubernetes.io/service-name"
	ManagedByLabel      = "endpointslice.kubernetes.io/managed-by"
	ManagedByController = "endpointslice-controller.k8s.io"
)

// PodEndpoint is one endpoint as the endpointslice controller writes it
// for a Pod. Nil conditions are left out of the object (the controller
// always writes all three; leaving them out tests "absent").
type PodEndpoint struct {
	IP                          string
	Ready, Serving, Terminating *bool
	NodeName, Zone              string   // "": absent
	Pod                         string   // targetRef Pod name ("": no targetRef)
	ForZones                    []string // hints.forZones
	ForNodes                    []string // hints.forNodes (trafficDistribution: PreferSameNode)
}

// Conditions sets ready, serving and terminating.
func (e PodEndpoint) Conditions(ready, serving, terminating bool) PodEndpoint {
	e.Ready, e.Serving, e.Terminating = &ready, &serving, &terminating
	return e
}

// PodUID is the stable UID PodEndpoint gives the Pod ns/name.
func PodUID(ns, name string) string {
	h := sha256.Sum256([]byte(ns + "/" + name))
	x := hex.EncodeToString(h[:16])
	return x[:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
}

// ControllerSlice is an EndpointSlice as the endpointslice controller
// writes it: service-name and managed-by labels, an owner-less object with
// each endpoint's conditions, nodeName, zone, targetRef and hints.
type ControllerSlice struct {
	Name, Service string
	AddressType   string // IPv4 (default), IPv6 or FQDN
	Ports         []SlicePort
	Endpoints     []PodEndpoint
}

// ApplyControllerSlice creates or replaces the EndpointSlice ns/s.Name and
// returns the stored object.
func (a *APIServer) ApplyControllerSlice(ctx context.Context, ns string, s ControllerSlice) ([]byte, error) {
	if s.AddressType == "" {
		s.AddressType = "IPv4"
	}
	eps := []any{}
	for _, e := range s.Endpoints {
		ep := map[string]any{"addresses": []string{e.IP}}
		cond := map[string]any{}
		for k, v := range map[string]*bool{"ready": e.Ready, "serving": e.Serving, "terminating": e.Terminating} {
			if v != nil {
				cond[k] = *v
			}
		}
		ep["conditions"] = cond
		if e.NodeName != "" {
			ep["nodeName"] = e.NodeName
		}
		if e.Zone != "" {
			ep["zone"] = e.Zone
		}
		if e.Pod != "" {
			ep["targetRef"] = map[string]any{"kind": "Pod", "namespace": ns, "name": e.Pod, "uid": PodUID(ns, e.Pod)}
		}
		hints := map[string]any{}
		for key, names := range map[string][]string{"forZones": e.ForZones, "forNodes": e.ForNodes} {
			if len(names) > 0 {
				list := []any{}
				for _, n := range names {
					list = append(list, map[string]any{"name": n})
				}
				hints[key] = list
			}
		}
		if len(hints) > 0 {
			ep["hints"] = hints
		}
		eps = append(eps, ep)
	}
	ports := s.Ports
	if ports == nil {
		ports = []SlicePort{}
	}
	return a.Apply(ctx, map[string]any{
		"apiVersion": "discovery.k8s.io/v1",
		"kind":       "EndpointSlice",
		"metadata": map[string]any{"name": s.Name, "namespace": ns, "labels": map[string]string{
			ServiceNameLabel: s.Service, ManagedByLabel: ManagedByController,
		}},
		"addressType": s.AddressType,
		"endpoints":   eps,
		"ports":       ports,
	})
}

// PodAddress is a core/v1 EndpointAddress of a Pod, as the endpoints
// controller writes it (nodeName and targetRef), for Apply.
func PodAddress(ns, ip, node, pod string) map[string]any {
	return map[string]any{"ip": ip, "nodeName": node,
		"targetRef": map[string]any{"kind": "Pod", "namespace": ns, "name": pod, "uid": PodUID(ns, pod)}}
}
