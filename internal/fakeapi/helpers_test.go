package fakeapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// These helpers talk to the fake with a plain net/http client, as kdisc
// does, so the tests see exactly the bytes on the wire.

type listBody struct {
	Kind       string            `json:"kind"`
	APIVersion string            `json:"apiVersion"`
	Metadata   listMeta          `json:"metadata"`
	Items      []json.RawMessage `json:"items"`
}

type watchEvent struct {
	Type   string          `json:"type"`
	Object json.RawMessage `json:"object"`
}

// get fetches path and returns the response with its body read.
func get(t *testing.T, s *Server, path string) (*http.Response, []byte) {
	t.Helper()
	resp, err := s.Client().Get(s.URL + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", path, err)
	}
	return resp, b
}

func list(t *testing.T, s *Server, path string) listBody {
	t.Helper()
	resp, b := get(t, s, path)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	var l listBody
	if err := json.Unmarshal(b, &l); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, b)
	}
	return l
}

func status(t *testing.T, b []byte) Status {
	t.Helper()
	var st Status
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("not a Status: %v: %s", err, b)
	}
	return st
}

// names returns namespace/name of each item.
func names(t *testing.T, items []json.RawMessage) []string {
	t.Helper()
	var out []string
	for _, it := range items {
		var o struct {
			Metadata ObjectMeta `json:"metadata"`
		}
		if err := json.Unmarshal(it, &o); err != nil {
			t.Fatalf("item: %v: %s", err, it)
		}
		out = append(out, o.Metadata.Namespace+"/"+o.Metadata.Name)
	}
	return out
}

func meta(t *testing.T, obj json.RawMessage) ObjectMeta {
	t.Helper()
	var o struct {
		Metadata ObjectMeta `json:"metadata"`
	}
	if err := json.Unmarshal(obj, &o); err != nil {
		t.Fatalf("object: %v: %s", err, obj)
	}
	return o.Metadata
}

// stream is an open watch read with a json.Decoder, as a client would.
type stream struct {
	t      *testing.T
	resp   *http.Response
	cancel context.CancelFunc
	events chan watchEvent
	err    chan error // the decoder's final error (io.EOF on a clean end)
}

func watch(t *testing.T, s *Server, path string) *stream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", s.URL+path, nil)
	resp, err := s.Client().Do(req)
	if err != nil {
		cancel()
		t.Fatalf("watch %s: %v", path, err)
	}
	w := &stream{t: t, resp: resp, cancel: cancel, events: make(chan watchEvent, 100), err: make(chan error, 1)}
	go func() {
		dec := json.NewDecoder(resp.Body)
		for {
			var ev watchEvent
			if err := dec.Decode(&ev); err != nil {
				w.err <- err
				close(w.events)
				return
			}
			w.events <- ev
		}
	}()
	t.Cleanup(func() { cancel(); resp.Body.Close() })
	return w
}

const deadline = 10 * time.Second

// next returns the next event or fails after the deadline.
func (w *stream) next() watchEvent {
	w.t.Helper()
	select {
	case ev, ok := <-w.events:
		if !ok {
			w.t.Fatalf("stream ended: %v", <-w.err)
		}
		return ev
	case <-time.After(deadline):
		w.t.Fatal("no watch event within deadline")
	}
	return watchEvent{}
}

// end waits for the stream to end and returns the decoder's error.
func (w *stream) end() error {
	w.t.Helper()
	for {
		select {
		case ev, ok := <-w.events:
			if !ok {
				return <-w.err
			}
			w.t.Fatalf("unexpected event %s %s", ev.Type, ev.Object)
		case <-time.After(deadline):
			w.t.Fatal("stream did not end within deadline")
		}
	}
}

// rawChunks sends a GET over a raw TCP connection and returns the body's
// HTTP chunks as sent, to observe the split points.
func rawChunks(t *testing.T, s *Server, path string, stopAfter func(body []byte) bool) [][]byte {
	t.Helper()
	conn, err := net.Dial("tcp", s.ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(deadline))
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if te := resp.TransferEncoding; len(te) != 1 || te[0] != "chunked" {
		t.Fatalf("transfer encoding %v, want chunked", te)
	}
	// http.ReadResponse installed a chunked reader on resp.Body; read the
	// framing ourselves from br instead.
	var chunks [][]byte
	var body []byte
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("chunk size: %v", err)
		}
		n, err := strconv.ParseInt(strings.TrimSpace(line), 16, 64)
		if err != nil {
			t.Fatalf("chunk size %q: %v", line, err)
		}
		if n == 0 {
			return chunks
		}
		c := make([]byte, n+2)
		if _, err := io.ReadFull(br, c); err != nil {
			t.Fatal(err)
		}
		chunks = append(chunks, c[:n])
		body = append(body, c[:n]...)
		if stopAfter != nil && stopAfter(body) {
			return chunks
		}
	}
}

func isUnexpectedEOF(err error) bool {
	return errors.Is(err, io.ErrUnexpectedEOF) || err != nil && strings.Contains(err.Error(), "unexpected EOF")
}
