package apiserver

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kdisc/kdisc/internal/fakeapi"
)

// The real apiserver sends the Endpoints deprecation warning on every list
// and watch: kdisc logs it once, not once per request.
func TestWarningLoggedOnce(t *testing.T) {
	api := fakeapi.New(t)
	var logs bytes.Buffer
	c, err := New(Options{Schema: "http", Host: api.Host(), Port: api.Port(), Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	require.NoError(t, err)
	for range 3 {
		resp, err := c.Get(context.Background(), "/api/v1/endpoints", nil)
		require.NoError(t, err)
		resp.Body.Close()
	}
	assert.Equal(t, 1, strings.Count(logs.String(), "v1 Endpoints is deprecated"), logs.String())
}
