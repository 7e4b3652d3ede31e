package kubetest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// etcdCall POSTs a JSON body to etcd's gRPC gateway (/v3/...) on the client
// URL and decodes the JSON answer into out.
func (c *Cluster) etcdCall(ctx context.Context, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.EtcdURL+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("kubetest: etcd %s: %w", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("kubetest: etcd %s: %d %s", path, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("kubetest: etcd %s: %w (%s)", path, err, b)
	}
	return nil
}

// EtcdRevision returns etcd's current revision, which kube-apiserver uses
// as resourceVersion (shared by every apiserver of the cluster).
func (c *Cluster) EtcdRevision(ctx context.Context) (int64, error) {
	var r struct {
		Header struct {
			Revision string `json:"revision"`
		} `json:"header"`
	}
	key := base64.StdEncoding.EncodeToString([]byte("/kubetest/revision-probe"))
	if err := c.etcdCall(ctx, "/v3/kv/range", map[string]any{"key": key}, &r); err != nil {
		return 0, err
	}
	return strconv.ParseInt(r.Header.Revision, 10, 64)
}

// BumpRevision writes twice to a key outside every apiserver's prefix, so
// that etcd's revision moves past every resourceVersion handed out so far
// (by at least 2), and returns the new revision.
func (c *Cluster) BumpRevision(ctx context.Context) (int64, error) {
	var r struct {
		Header struct {
			Revision string `json:"revision"`
		} `json:"header"`
	}
	key := base64.StdEncoding.EncodeToString([]byte("/kubetest/revision-bump"))
	for i := 0; i < 2; i++ {
		val := base64.StdEncoding.EncodeToString([]byte(strconv.Itoa(i)))
		if err := c.etcdCall(ctx, "/v3/kv/put", map[string]any{"key": key, "value": val}, &r); err != nil {
			return 0, err
		}
	}
	return strconv.ParseInt(r.Header.Revision, 10, 64)
}

// Compact bumps etcd's revision (BumpRevision) and compacts etcd's history
// up to it, physically, and returns that revision. Afterwards every
// resourceVersion handed out before the call is compacted: reads and
// watches that go to etcd at such a version fail with 410 Gone (a watch: an
// ERROR event carrying a Status with code 410 in a 200 stream; a LIST with
// a continue token: HTTP 410).
//
// Requests that kube-apiserver serves from its watch cache (the default for
// watches and most LISTs) are NOT affected: it keeps its own history and
// does not notice an external compaction. Compact is therefore meant for an
// apiserver started with --watch-cache=false (e.g.
// StartSecondAPIServer(ctx, "--watch-cache=false")). With the watch cache
// on, use ExpireWatches.
func (c *Cluster) Compact(ctx context.Context) (int64, error) {
	rev, err := c.BumpRevision(ctx)
	if err != nil {
		return 0, err
	}
	var r map[string]any
	err = c.etcdCall(ctx, "/v3/kv/compaction", map[string]any{
		"revision": strconv.FormatInt(rev, 10), "physical": true,
	}, &r)
	return rev, err
}

// ExpireWatches makes every resourceVersion handed out so far too old for a
// watch on apiserver a (which must run with its watch cache, the default):
// it bumps etcd's revision and restarts a (same port, same data; ~5 s).
// The restarted apiserver's watch cache starts at the new revision, so a
// watch resumed from an older resourceVersion gets, in a 200 response, one
// event {"type":"ERROR","object":{"kind":"Status",...,"reason":"Expired",
// "code":410,"message":"too old resource version: OLD (NEW)"}} and ends.
// Watches open during the restart are cut, as in a real apiserver restart.
func (c *Cluster) ExpireWatches(ctx context.Context, a *APIServer) error {
	if _, err := c.BumpRevision(ctx); err != nil {
		return err
	}
	a.StopAPIServer()
	return a.StartAPIServer(ctx)
}
