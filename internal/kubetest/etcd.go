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

// Compact compacts etcd's history up to its current revision (physically)
// and returns that revision: afterwards, reads and watches that go to etcd
// at an older revision fail with 410 Gone. Watches that kube-apiserver
// serves from its watch cache are NOT affected by a compaction; see
// ExpireWatches and testdata/kube/README.md for what makes a watch of an old
// resourceVersion get 410.
func (c *Cluster) Compact(ctx context.Context) (int64, error) {
	rev, err := c.EtcdRevision(ctx)
	if err != nil {
		return 0, err
	}
	var r map[string]any
	err = c.etcdCall(ctx, "/v3/kv/compaction", map[string]any{
		"revision": strconv.FormatInt(rev, 10), "physical": true,
	}, &r)
	return rev, err
}
