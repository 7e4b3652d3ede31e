package apiserver_test

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kdisc/kdisc/apiserver"
)

// An error answer in protobuf (what kube-apiserver sends a client that
// asked for protobuf first) is read as a Status, as a JSON one is: here
// the real apiserver's 400 for a quoted label value
// (testdata/kube/captured/status-400-label-selector.pb). A protobuf
// Content-Type on a body that is not a Status says only the HTTP status.
func TestProtobufStatusError(t *testing.T) {
	body, err := os.ReadFile("../testdata/kube/captured/status-400-label-selector.pb")
	require.NoError(t, err)
	pb := http.Header{"Content-Type": {apiserver.MediaProtobuf}}
	c := statusServer(t, http.StatusBadRequest, pb, string(body))
	_, err = c.GetAccepting(context.Background(), endpointsPath, nil, apiserver.AcceptProtobufOrJSON)
	se := statusError(t, err)
	assert.Equal(t, http.StatusBadRequest, se.Code)
	assert.Equal(t, "BadRequest", se.Reason)
	assert.True(t, strings.HasPrefix(se.Message, "unable to parse requirement: "), se.Message)

	c = statusServer(t, http.StatusServiceUnavailable, pb, "upstream connect error\n")
	_, err = c.GetAccepting(context.Background(), endpointsPath, nil, apiserver.AcceptProtobufOrJSON)
	se = statusError(t, err)
	assert.Equal(t, http.StatusServiceUnavailable, se.Code)
	assert.Empty(t, se.Reason)
	assert.Empty(t, se.Message)
}

func TestIsProtobuf(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/vnd.kubernetes.protobuf":              true,
		"application/vnd.kubernetes.protobuf;stream=watch": true,
		" Application/VND.kubernetes.protobuf ; charset=x": true,
		"application/json": false,
		"":                 false,
		"application/vnd.kubernetes.protobuf+json": false,
	} {
		assert.Equal(t, want, apiserver.IsProtobuf(ct), ct)
	}
}
