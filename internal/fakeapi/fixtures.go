package fakeapi

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
)

// Fixture returns the path of a bundled fixture in testdata/fakeapi (found
// from this source file, so it works from any package's tests).
func Fixture(name string) string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return filepath.Join("testdata", "fakeapi", name)
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", "fakeapi", name)
}

// LoadFixture puts every object of a JSON file: one Endpoints or
// EndpointSlice, an EndpointsList or EndpointSliceList (items without
// kind, as the server lists them), or a "List" whose items carry their
// kind. Objects are put in file order, each getting a new resourceVersion.
// A bad file fails the test.
func (s *Server) LoadFixture(path string) {
	s.t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		s.t.Fatalf("fakeapi: %v", err)
	}
	if err := s.load(data, ""); err != nil {
		s.t.Fatalf("fakeapi: %s: %v", path, err)
	}
}

func (s *Server) load(data []byte, kind string) error {
	var head struct {
		Kind  string            `json:"kind"`
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return err
	}
	if head.Kind == "" {
		head.Kind = kind
	}
	switch head.Kind {
	case "EndpointsList", "EndpointSliceList", "List":
		itemKind := map[string]string{"EndpointsList": "Endpoints", "EndpointSliceList": "EndpointSlice"}[head.Kind]
		for _, it := range head.Items {
			if err := s.load(it, itemKind); err != nil {
				return err
			}
		}
		return nil
	case "Endpoints":
		var e Endpoints
		if err := json.Unmarshal(data, &e); err != nil {
			return err
		}
		_, err := s.store.put(resEndpoints, &e)
		return err
	case "EndpointSlice":
		var e EndpointSlice
		if err := json.Unmarshal(data, &e); err != nil {
			return err
		}
		_, err := s.store.put(resEndpointSlices, &e)
		return err
	}
	return fmt.Errorf("unsupported kind %q", head.Kind)
}
