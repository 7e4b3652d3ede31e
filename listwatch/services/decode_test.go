package services

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const endpointsJSON = `{"kind":"Endpoints","apiVersion":"v1","metadata":{"name":"plat-dev","namespace":"default","uid":"6b0c","resourceVersion":"4242","creationTimestamp":"2026-11-25T10:00:00Z","labels":{"app":"plat"},"annotations":{"endpoints.kubernetes.io/last-change-trigger-time":"2026-11-25T10:00:00Z"},"managedFields":[{"manager":"kube-controller-manager","operation":"Update","apiVersion":"v1","time":"2026-11-25T10:00:00Z","fieldsType":"FieldsV1","fieldsV1":{"f:subsets":{}}}]},"subsets":[{"addresses":[{"ip":"10.5.10.110","nodeName":"n1","targetRef":{"kind":"Pod","namespace":"default","name":"p1","uid":"u1"}},{"ip":"10.5.10.109"}],"notReadyAddresses":[{"ip":"10.5.10.200"}],"ports":[{"name":"port","port":3306,"protocol":"TCP"}]}]}`

const sliceJSON = `{"kind":"EndpointSlice","apiVersion":"discovery.k8s.io/v1","metadata":{"name":"web-abc","namespace":"shop","resourceVersion":"77","labels":{"endpointslice.kubernetes.io/managed-by":"endpointslice-controller.k8s.io","kubernetes.io/service-name":"web"},"managedFields":[]},"addressType":"IPv6","endpoints":[{"addresses":["fd00::2"],"conditions":{"ready":true,"serving":true,"terminating":false},"nodeName":"n1"},{"addresses":["fd00::3"],"conditions":{}},{"addresses":["fd00::4"],"conditions":{"ready":false}},{"addresses":["fd00::5"],"conditions":{"ready":null}}],"ports":[{"name":"","port":8080,"protocol":"TCP"},{"name":"metrics","port":9090,"protocol":"TCP","appProtocol":"http"}]}`

func decode(t *testing.T, s string) object {
	t.Helper()
	var o object
	require.NoError(t, decodeObject([]byte(s), &o))
	return o
}

func TestDecodeEndpoints(t *testing.T) {
	o := decode(t, endpointsJSON)
	assert.Equal(t, "default", o.namespace)
	assert.Equal(t, "plat-dev", o.name)
	assert.Equal(t, "4242", o.resourceVersion)
	require.Len(t, o.subsets, 1)
	assert.Equal(t, []string{"10.5.10.110", "10.5.10.109"}, o.subsets[0].addresses, "notReadyAddresses are not served")
	assert.Equal(t, []port{{name: "port", number: 3306}}, o.subsets[0].ports)
}

func TestDecodeEndpointSlice(t *testing.T) {
	o := decode(t, sliceJSON)
	assert.Equal(t, "web", o.serviceName)
	assert.Equal(t, "IPv6", o.addressType)
	require.Len(t, o.endpoints, 4)
	assert.Equal(t, []bool{true, true, false, true}, []bool{o.endpoints[0].ready, o.endpoints[1].ready, o.endpoints[2].ready, o.endpoints[3].ready},
		"absent or null conditions.ready means ready")
	assert.Equal(t, []port{{name: "", number: 8080}, {name: "metrics", number: 9090}}, o.ports)
}

func TestDecodeMalformed(t *testing.T) {
	for name, s := range map[string]string{
		"port is a string":  `{"metadata":{"name":"a","namespace":"b"},"subsets":[{"ports":[{"port":"80"}]}]}`,
		"ip is a number":    `{"metadata":{"name":"a","namespace":"b"},"subsets":[{"addresses":[{"ip":10}]}]}`,
		"no name":           `{"metadata":{"namespace":"b"}}`,
		"metadata is array": `{"metadata":[]}`,
	} {
		t.Run(name, func(t *testing.T) {
			var o object
			assert.Error(t, decodeObject([]byte(s), &o))
		})
	}
}
