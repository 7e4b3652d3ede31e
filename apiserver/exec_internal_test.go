package apiserver

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The credential is cached until its expirationTimestamp, then the plugin
// runs again.
func TestExecExpiry(t *testing.T) {
	script, err := filepath.Abs("testdata/exec-credential.sh")
	require.NoError(t, err)
	count := filepath.Join(t.TempDir(), "count")
	runs := func() string {
		b, _ := os.ReadFile(count)
		return strings.TrimSpace(string(b))
	}
	for _, v := range []string{"client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1"} {
		os.Remove(count)
		s := newExecSource(&ExecConfig{
			APIVersion: v, Command: script, InteractiveMode: "IfAvailable",
			Env: []ExecEnv{{"KDISC_EXEC_COUNT", count}, {"KDISC_EXEC_API", v}, {"KDISC_EXEC_EXPIRY", "2030-01-01T00:00:00Z"}},
		}, nil)
		now := time.Date(2029, 12, 31, 23, 0, 0, 0, time.UTC)
		s.now = func() time.Time { return now }
		ctx := context.Background()

		c, err := s.get(ctx)
		require.NoError(t, err)
		assert.Equal(t, "exec-token-1", c.token)
		assert.Equal(t, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), c.expiry)
		now = now.Add(59 * time.Minute)
		c, err = s.get(ctx)
		require.NoError(t, err)
		assert.Equal(t, "exec-token-1", c.token, "cached until it expires")
		assert.Equal(t, "1", runs())

		now = now.Add(time.Minute)
		c, err = s.get(ctx)
		require.NoError(t, err)
		assert.Equal(t, "exec-token-2", c.token, "expired: the plugin runs again")
		assert.Equal(t, "2", runs())

		now = now.Add(-time.Hour) // the plugin prints the same expiry each time

		// invalidate drops only the credential it was given (a 401 for an
		// older one must not throw away a fresh one).
		s.invalidate(&execCred{token: "older"})
		c2, _ := s.get(ctx)
		assert.Same(t, c, c2)
		s.invalidate(c)
		c, _ = s.get(ctx)
		assert.Equal(t, "exec-token-3", c.token)
	}
}
