// Package protoreplay gives the replay apiserver (internal/replay) its
// protobuf objects: each object is decoded from the replay's JSON into its
// k8s.io/api type and encoded with that type's generated Marshal, the code
// kube-apiserver itself runs to answer in protobuf. internal/replay, in the
// main module, has no k8s.io dependency and adds only the framing.
package protoreplay

import (
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// Marshal is a replay.Protobuf for v1 Endpoints and discovery/v1
// EndpointSlices, told apart by the object's "kind".
func Marshal(obj []byte) ([]byte, error) {
	var tm struct{ Kind string }
	if err := json.Unmarshal(obj, &tm); err != nil {
		return nil, err
	}
	switch tm.Kind {
	case "Endpoints":
		var e corev1.Endpoints
		if err := json.Unmarshal(obj, &e); err != nil {
			return nil, err
		}
		return e.Marshal()
	case "EndpointSlice":
		var e discoveryv1.EndpointSlice
		if err := json.Unmarshal(obj, &e); err != nil {
			return nil, err
		}
		return e.Marshal()
	}
	return nil, fmt.Errorf("protoreplay: kind %q is neither Endpoints nor EndpointSlice", tm.Kind)
}
