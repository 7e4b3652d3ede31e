package kubetest_test

import (
	"context"
	"encoding/binary"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kdisc/kdisc/internal/kubetest"
	"github.com/kdisc/kdisc/internal/protowire"
)

const acceptProtobuf = "application/vnd.kubernetes.protobuf, application/json"

// getAs sends GET path with the given Accept header.
func getAs(ctx context.Context, t *testing.T, a *kubetest.APIServer, accept, path string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", accept)
	req.Header.Set("Authorization", "Bearer "+a.AdminToken)
	resp, err := a.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// listRV reads a protobuf LIST answer's metadata.resourceVersion.
func listRV(t *testing.T, body []byte) string {
	t.Helper()
	list, err := protowire.Unwrap(body)
	if err != nil {
		t.Fatal(err)
	}
	var d protowire.Decoder
	d.Reset(list)
	rv := ""
	for d.Next(d.Len()) {
		if d.Field() != 1 {
			d.Skip()
			continue
		}
		end := d.Message()
		for d.Next(end) {
			if d.Field() == 2 {
				rv = d.String()
			} else {
				d.Skip()
			}
		}
	}
	if d.Err() != nil || rv == "" {
		t.Fatalf("list metadata: %q %v", rv, d.Err())
	}
	return rv
}

// TestCaptureProtobuf records what kube-apiserver sends when asked for
// protobuf as kdisc asks (Accept: protobuf, then JSON): a LIST (and the
// same list at the same resourceVersion in JSON), a streaming list whose
// stream goes on as a watch (ADDED, the initial-events-end BOOKMARK,
// MODIFIED), and a Status. With -capture it writes them to
// testdata/kube/captured/*.pb (listwatch's TestCapturedProtobufAnswers
// reads them).
func TestCaptureProtobuf(t *testing.T) {
	c := kubetest.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const ns = "kubetest-proto"
	if err := c.CreateNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ApplyEndpoints(ctx, ns, "web",
		kubetest.EndpointSubset{
			Addresses: []kubetest.EndpointAddress{{IP: "10.7.0.1", NodeName: kubetest.Ptr("node-a")}, {IP: "10.7.0.2"}},
			Ports:     []kubetest.EndpointPort{{Name: "http", Port: 80, Protocol: "TCP"}, {Name: "https", Port: 443}},
		}); err != nil {
		t.Fatal(err)
	}
	slice := kubetest.EndpointSlice{Name: "web-1", Service: "web", AddressType: "IPv4",
		Endpoints: []kubetest.SliceEndpoint{
			{Addresses: []string{"10.7.1.1"}, Conditions: &kubetest.EndpointConditions{Ready: kubetest.Ptr(true)}, NodeName: kubetest.Ptr("node-a"), Zone: kubetest.Ptr("a")},
			{Addresses: []string{"10.7.1.2"}, Conditions: &kubetest.EndpointConditions{Ready: kubetest.Ptr(false), Serving: kubetest.Ptr(true), Terminating: kubetest.Ptr(true)}},
		},
		Ports: []kubetest.SlicePort{kubetest.Port("http", 80), kubetest.Port("", 8080)},
	}
	if _, err := c.ApplyEndpointSlice(ctx, ns, slice); err != nil {
		t.Fatal(err)
	}

	for _, res := range []struct{ name, path string }{
		{"endpoints", "/api/v1/namespaces/" + ns + "/endpoints"},
		{"endpointslices", "/apis/discovery.k8s.io/v1/namespaces/" + ns + "/endpointslices"},
	} {
		resp := getAs(ctx, t, c.APIServer, acceptProtobuf, res.path)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "application/vnd.kubernetes.protobuf" || !protowire.IsEnvelope(body) {
			t.Fatalf("%s protobuf list: %d %q %q", res.name, resp.StatusCode, ct, body[:min(len(body), 16)])
		}
		save(t, res.name+"-list.pb", body)
		rv := listRV(t, body)
		resp = getAs(ctx, t, c.APIServer, "application/json", res.path+"?resourceVersion="+rv+"&resourceVersionMatch=Exact")
		jsonBody, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(jsonBody), `"resourceVersion":"`+rv+`"`) {
			t.Fatalf("%s JSON list at %s: %d %s", res.name, rv, resp.StatusCode, jsonBody)
		}
		save(t, res.name+"-list-pb.json", jsonBody)

		// The streaming list, then the watch it becomes.
		wctx, wcancel := context.WithCancel(ctx)
		resp = getAs(wctx, t, c.APIServer, acceptProtobuf, res.path+"?watch=1&allowWatchBookmarks=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&resourceVersion=")
		if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "application/vnd.kubernetes.protobuf;stream=watch" {
			t.Fatalf("%s protobuf watch: %d %q", res.name, resp.StatusCode, ct)
		}
		frames := make(chan []byte, 16)
		go func() {
			defer close(frames)
			r := protowire.NewReader(resp.Body, 4096, 1<<20)
			for {
				f, err := r.Frame()
				if err != nil {
					return
				}
				frames <- binary.BigEndian.AppendUint32(nil, uint32(len(f)))[:4:4]
				frames <- append([]byte(nil), f...)
			}
		}()
		var stream []byte
		next := func() []byte {
			t.Helper()
			select {
			case l, ok := <-frames:
				if !ok {
					t.Fatalf("%s: watch ended", res.name)
				}
				f := <-frames
				stream = append(append(stream, l...), f...)
				return f
			case <-time.After(30 * time.Second):
				t.Fatalf("%s: no frame in 30 s", res.name)
			}
			return nil
		}
		// Initial events up to the bookmark (the bytes of the type
		// name are in the frame: WatchEvent field 1).
		for f := next(); !strings.Contains(string(f[:16]), "BOOKMARK"); f = next() {
		}
		if res.name == "endpoints" {
			_, err := c.ApplyEndpoints(ctx, ns, "web", kubetest.Subset([]string{"10.7.0.3"}, kubetest.EndpointPort{Name: "http", Port: 80}))
			if err != nil {
				t.Fatal(err)
			}
		} else {
			slice.Endpoints = slice.Endpoints[:1]
			if _, err := c.ApplyEndpointSlice(ctx, ns, slice); err != nil {
				t.Fatal(err)
			}
		}
		for f := next(); !strings.Contains(string(f[:16]), "MODIFIED"); f = next() {
		}
		wcancel()
		resp.Body.Close()
		save(t, res.name+"-watch.pb", stream)
	}

	// A Status in protobuf: a label selector with a quoted value is a 400.
	resp := getAs(ctx, t, c.APIServer, acceptProtobuf, "/api/v1/endpoints?labelSelector=first%3D%22a%22")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Content-Type") != "application/vnd.kubernetes.protobuf" || !protowire.IsEnvelope(body) {
		t.Fatalf("400 in protobuf: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	save(t, "status-400-label-selector.pb", body)
}
