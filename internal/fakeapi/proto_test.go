package fakeapi

import (
	"bytes"
	"encoding/binary"
	"io"
	"net/http"
	"testing"
)

func getAccept(t *testing.T, s *Server, path, accept string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.URL+path, nil)
	req.Header.Set("Accept", accept)
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// The fake answers in the format the Accept header asks for: protobuf
// (LIST, WATCH with ;stream=watch frames, Status) when it names
// application/vnd.kubernetes.protobuf, JSON otherwise.
func TestServesProtobufPerAccept(t *testing.T) {
	s := New(t)
	s.PutEndpoints(&Endpoints{Metadata: ObjectMeta{Name: "web", Namespace: "shop"},
		Subsets: []EndpointSubset{{Addresses: []EndpointAddress{{IP: "10.0.0.1"}}, Ports: []EndpointPort{{Name: "http", Port: 80}}}}})
	const pbAccept = "application/vnd.kubernetes.protobuf, application/json"

	resp, b := getAccept(t, s, "/api/v1/endpoints", pbAccept)
	if ct := resp.Header.Get("Content-Type"); ct != mediaProtobuf || !bytes.HasPrefix(b, []byte("k8s\x00")) {
		t.Fatalf("protobuf list: %q %q", ct, b)
	}
	resp, b = getAccept(t, s, "/api/v1/endpoints", "application/json")
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" || b[0] != '{' {
		t.Fatalf("JSON list: %q %q", ct, b)
	}
	resp, b = getAccept(t, s, "/api/v1/endpoints?labelSelector=a%3D%22b%22", pbAccept)
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Content-Type") != mediaProtobuf || !bytes.HasPrefix(b, []byte("k8s\x00")) {
		t.Fatalf("protobuf status: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}

	// A watch from the start: framed events, the first an ADDED of web.
	rv := s.ResourceVersion()
	s.PutEndpoints(&Endpoints{Metadata: ObjectMeta{Name: "api", Namespace: "shop"}})
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/api/v1/endpoints?watch=1&resourceVersion="+rv, nil)
	req.Header.Set("Accept", pbAccept)
	wresp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer wresp.Body.Close()
	if ct := wresp.Header.Get("Content-Type"); ct != mediaProtobufWatch {
		t.Fatalf("protobuf watch: %q", ct)
	}
	var n [4]byte
	if _, err := io.ReadFull(wresp.Body, n[:]); err != nil {
		t.Fatal(err)
	}
	frame := make([]byte, binary.BigEndian.Uint32(n[:]))
	if _, err := io.ReadFull(wresp.Body, frame); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(frame, []byte("\x0a\x05ADDED\x12")) || !bytes.Contains(frame, []byte("k8s\x00")) || !bytes.Contains(frame, []byte("api")) {
		t.Fatalf("first frame %q", frame)
	}
}
