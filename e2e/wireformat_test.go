package e2e

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kdisc/kdisc"
	"github.com/kdisc/kdisc/dump"
	"github.com/kdisc/kdisc/internal/kubetest"
)

// wireProxy is a TLS reverse proxy in front of the real apiserver that
// records, for each request kdisc makes, its Accept header, the answer's
// Content-Type and the bytes of the answer: what went over the wire.
type wireProxy struct {
	srv    *httptest.Server
	caFile string
	mu     sync.Mutex
	seen   []wireRecord
}

type wireRecord struct {
	path, accept, contentType string
	watch                     bool
	body                      *countingBody // the bytes so far: body.count()
}

func newWireProxy(t *testing.T, a *kubetest.APIServer) *wireProxy {
	target, err := url.Parse(a.URL)
	require.NoError(t, err)
	p := &wireProxy{}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = a.HTTPClient().Transport
	rp.FlushInterval = -1 // watch frames go through as they come
	rp.ModifyResponse = func(resp *http.Response) error {
		body := &countingBody{ReadCloser: resp.Body}
		resp.Body = body
		r := resp.Request
		p.mu.Lock()
		p.seen = append(p.seen, wireRecord{path: r.URL.Path, accept: r.Header.Get("Accept"),
			contentType: resp.Header.Get("Content-Type"), watch: r.URL.Query().Get("watch") != "", body: body})
		p.mu.Unlock()
		return nil
	}
	p.srv = httptest.NewTLSServer(rp)
	t.Cleanup(p.srv.Close)
	p.caFile = filepath.Join(t.TempDir(), "proxy-ca.crt")
	require.NoError(t, os.WriteFile(p.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.srv.Certificate().Raw}), 0o600))
	return p
}

// cluster is the YAML of a cluster reaching the apiserver through the proxy.
func (p *wireProxy) cluster(a *kubetest.APIServer, extra string) string {
	u, _ := url.Parse(p.srv.URL)
	return fmt.Sprintf("service:\n  schema: https\n  host: %s\n  port: %s\n  ca_file: %s\nclient:\n  token_file: %s\n%s",
		u.Hostname(), u.Port(), p.caFile, a.DiscoveryTokenFile, extra)
}

func (p *wireProxy) records() []wireRecord {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]wireRecord(nil), p.seen...)
}

// countingBody counts the bytes read through it.
type countingBody struct {
	io.ReadCloser
	n atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// TestWireFormatProtobufAndJSON proves the Wire format contract on the
// real apiserver: by default every LIST, streaming list and WATCH of
// Endpoints and EndpointSlices asks for protobuf and the bytes that come
// back are protobuf (Content-Type, as a proxy in between sees them);
// content_type: json asks for and gets JSON; and both give the same dump
// and the same answer for every key, before and after a watch event.
func TestWireFormatProtobufAndJSON(t *testing.T) {
	c := cluster(t)
	ns := namespace(t, c.APIServer, "e2e-wire")
	_, err := c.ApplyEndpoints(ctx(t), ns, "web", kubetest.Subset([]string{"10.30.0.1", "10.30.0.2"}, httpPort))
	require.NoError(t, err)
	slice := kubetest.EndpointSlice{Name: "api-1", Service: "api", AddressType: "IPv4",
		Endpoints: []kubetest.SliceEndpoint{
			{Addresses: []string{"10.30.1.1"}, NodeName: kubetest.Ptr("node-a"), Zone: kubetest.Ptr("a")},
			{Addresses: []string{"10.30.1.2"}, Conditions: &kubetest.EndpointConditions{Ready: kubetest.Ptr(false), Serving: kubetest.Ptr(true), Terminating: kubetest.Ptr(true)}},
		},
		Ports: []kubetest.SlicePort{kubetest.Port("http", 80)},
	}
	_, err = c.ApplyEndpointSlice(ctx(t), ns, slice)
	require.NoError(t, err)

	type result struct {
		dump    string
		answers map[string]string
	}
	run := func(contentType string) (result, []wireRecord) {
		p := newWireProxy(t, c.APIServer)
		extra := "namespace_selector:\n  equal: " + ns + "\nnode_detail: true\n"
		if contentType != "" {
			extra += "content_type: " + contentType + "\n"
		}
		d := startGo(t, multiConfig(
			[2]string{"ep", p.cluster(c.APIServer, extra)},
			[2]string{"es", p.cluster(c.APIServer, extra+"watch_endpoint_slices: true\n")},
		))
		waitHosts(t, d, "ep/"+ns+"/web:http", "10.30.0.1:80/50", "10.30.0.2:80/50")
		waitHosts(t, d, "es/"+ns+"/api:http", "10.30.1.1:80/50")
		// A watch event of each kind of object.
		_, err := c.ApplyEndpoints(ctx(t), ns, "web", kubetest.Subset([]string{"10.30.0.1", "10.30.0.3"}, httpPort))
		require.NoError(t, err)
		s := slice
		s.Endpoints = append([]kubetest.SliceEndpoint{{Addresses: []string{"10.30.1.3"}}}, slice.Endpoints...)
		_, err = c.ApplyEndpointSlice(ctx(t), ns, s)
		require.NoError(t, err)
		waitHosts(t, d, "ep/"+ns+"/web:http", "10.30.0.1:80/50", "10.30.0.3:80/50")
		waitHosts(t, d, "es/"+ns+"/api:http", "10.30.1.1:80/50", "10.30.1.3:80/50")
		res := result{answers: map[string]string{}}
		dm := d.Dump()
		dm.Config = nil // says content_type: differs by design
		b, err := json.Marshal(dm)
		require.NoError(t, err)
		res.dump = string(b)
		for _, cl := range dm.Endpoints {
			for _, e := range cl.Endpoints {
				var ports map[string]json.RawMessage
				require.NoError(t, json.Unmarshal([]byte(e.Value), &ports))
				for port := range ports {
					key := cl.ID + "/" + e.Name + ":" + port
					nodes, answer := d.Lookup(nil, key)
					detail, _ := d.Detail(key)
					res.answers[key] = fmt.Sprint(answer, hostsOf(nodes), detail)
				}
			}
		}
		// Back to the original objects for the next run.
		_, err = c.ApplyEndpoints(ctx(t), ns, "web", kubetest.Subset([]string{"10.30.0.1", "10.30.0.2"}, httpPort))
		require.NoError(t, err)
		_, err = c.ApplyEndpointSlice(ctx(t), ns, slice)
		require.NoError(t, err)
		return res, p.records()
	}

	check := func(name string, recs []wireRecord, accept, mediaType string) {
		t.Helper()
		lists, watches, bytes := 0, 0, int64(0)
		for _, r := range recs {
			if !strings.HasSuffix(r.path, "/endpoints") && !strings.HasSuffix(r.path, "/endpointslices") {
				continue
			}
			bytes += r.body.n.Load()
			if r.watch {
				watches++
			} else {
				lists++
			}
			mt, _, _ := strings.Cut(r.contentType, ";")
			if r.accept != accept || mt != mediaType {
				t.Errorf("%s: %s watch=%v asked %q, got %q (%d bytes)", name, r.path, r.watch, r.accept, r.contentType, r.body.n.Load())
			}
			if r.watch && mediaType == "application/vnd.kubernetes.protobuf" && r.contentType != mediaType+";stream=watch" {
				t.Errorf("%s: a protobuf watch without ;stream=watch: %q", name, r.contentType)
			}
		}
		if watches < 2 {
			t.Errorf("%s: %d watches of endpoints(lices) seen, want one of each resource at least: %+v", name, watches, recs)
		}
		t.Logf("%s: %d lists and %d watches, all %s, %d bytes", name, lists, watches, mediaType, bytes)
	}

	protoRes, protoRecs := run("") // the default
	check("default", protoRecs, "application/vnd.kubernetes.protobuf, application/json", "application/vnd.kubernetes.protobuf")
	jsonRes, jsonRecs := run("json")
	check("content_type: json", jsonRecs, "application/json", "application/json")

	require.NotEmpty(t, protoRes.answers)
	require.Equal(t, jsonRes.dump, protoRes.dump, "the same dump in both formats")
	require.Equal(t, jsonRes.answers, protoRes.answers, "the same answer for every key in both formats")
	var dm dump.Dump
	require.NoError(t, json.Unmarshal([]byte(protoRes.dump), &dm))
	t.Logf("%d keys answered alike; dump %s", len(protoRes.answers), protoRes.dump)
}

func hostsOf(nodes []kdisc.Node) []string {
	out := []string{}
	for _, n := range nodes {
		out = append(out, fmt.Sprintf("%s:%d/%d", n.Host(), n.Port, n.Weight))
	}
	return out
}
