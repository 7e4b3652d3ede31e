package apiserver

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	jsoniter "github.com/json-iterator/go"
)

func statusSeeds(f *testing.F) [][]byte {
	files, err := filepath.Glob("../testdata/kube/captured/status-*.json")
	if err != nil || len(files) == 0 {
		f.Fatalf("no captured Status files: %v", err)
	}
	var out [][]byte
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	return append(out,
		[]byte(`{"kind":"Status","code":"410"}`),
		[]byte(`{"reason":null,"message":12,"code":1e99}`),
		[]byte(`<html><body>502 Bad Gateway</body></html>`),
		[]byte(``),
	)
}

// The crashers kept in testdata/fuzz/FuzzStatusFromResponse pin two
// defects it found: a Retry-After beyond about 292 years of seconds
// overflowed to a negative or short delay (retry-after-overflow,
// retry-after-overflow-plus-sign), and a body starting with ',' was read
// as an object (leading-comma-body).

// FuzzStatusFromResponse: turning a non-2xx answer into a StatusError never
// panics whatever its body and Retry-After header, keeps the HTTP status
// code, never asks to wait a negative time (nor less than a second when
// the header says a positive number of seconds), and takes no reason or
// message from a body that is not a JSON object.
func FuzzStatusFromResponse(f *testing.F) {
	for _, b := range statusSeeds(f) {
		f.Add(403, b, "")
		f.Add(429, b, "7")
	}
	for _, ra := range []string{"0", "-1", "120", "Wed, 21 Oct 2015 07:28:00 GMT", "Fri, 31 Dec 9999 23:59:59 GMT", "1e3", " 5", "99999999999"} {
		f.Add(503, []byte(`{"kind":"Status","code":503,"reason":"ServiceUnavailable"}`), ra)
	}
	f.Fuzz(func(t *testing.T, code int, body []byte, retryAfter string) {
		resp := &http.Response{
			StatusCode: code,
			Header:     http.Header{"Retry-After": {retryAfter}},
			Body:       io.NopCloser(bytes.NewReader(body)),
		}
		e := statusFromResponse(resp)
		if e.Code != code {
			t.Fatalf("Code %d, want the HTTP status %d", e.Code, code)
		}
		// Seconds, however many (strconv.Atoi's syntax, as status.go reads
		// them): never negative, never less than one second.
		n, err := strconv.Atoi(retryAfter)
		if e.RetryAfter < 0 || (err == nil && n > 0 && e.RetryAfter < time.Second) {
			t.Fatalf("Retry-After %q gave a delay of %v", retryAfter, e.RetryAfter)
		}
		_ = e.Error()
		// A body that is not a JSON object (a proxy's HTML page, text, an
		// array) gives neither reason nor message.
		if first := firstByte(body); first != '{' && (e.Reason != "" || e.Message != "") {
			t.Fatalf("reason %q message %q kept from a body that is not a JSON object: %q", e.Reason, e.Message, body)
		}
	})
}

// firstByte returns the first byte of b that is not JSON whitespace, or 0.
func firstByte(b []byte) byte {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\n', '\r':
		default:
			return c
		}
	}
	return 0
}

// FuzzReadStatus: ReadStatus never panics on arbitrary bytes, and reads a
// Status encoded from fuzzer-chosen fields back exactly: code, reason and
// message preserved.
func FuzzReadStatus(f *testing.F) {
	for _, b := range statusSeeds(f) {
		f.Add(b, 410, "Expired", "too old resource version: 1 (5)")
	}
	f.Add([]byte(`{"code":`), -1, "", "\u2028\"\\")
	f.Fuzz(func(t *testing.T, data []byte, code int, reason, message string) {
		// Arbitrary bytes: no panic.
		var e StatusError
		_ = ReadStatus(jsoniter.ParseBytes(jsoniter.ConfigDefault, data), &e)
		_ = ReadStatus(jsoniter.Parse(jsoniter.ConfigDefault, bytes.NewReader(data), 16), &e)

		// A Status the apiserver could send: fields back as written.
		body, err := json.Marshal(map[string]any{"kind": "Status", "apiVersion": "v1", "metadata": map[string]any{},
			"status": "Failure", "reason": reason, "message": message, "code": code, "details": data})
		if err != nil {
			t.Fatal(err)
		}
		// encoding/json writes invalid UTF-8 as U+FFFD: compare with what
		// it encoded.
		var want struct{ Reason, Message string }
		if err := json.Unmarshal(body, &want); err != nil {
			t.Fatal(err)
		}
		e = StatusError{}
		it := jsoniter.ParseBytes(jsoniter.ConfigDefault, body)
		got := ReadStatus(it, &e)
		if it.Error != nil && it.Error != io.EOF {
			t.Fatalf("ReadStatus(%s): %v", body, it.Error)
		}
		if got != code || e.Reason != want.Reason || e.Message != want.Message {
			t.Fatalf("ReadStatus(%s) = %d, %q, %q; want %d, %q, %q", body, got, e.Reason, e.Message, code, want.Reason, want.Message)
		}
	})
}
