package dump

import (
	"encoding/json"
	"io"
	"net/http"

	"github.com/kdisc/kdisc/shm"
)

// Source is what the control API serves; *kdisc.Discovery implements it.
type Source interface {
	Dump() Dump
	Lookup(buf []shm.Node, service string) ([]shm.Node, shm.Answer)
	// NotReady lists the clusters that have not finished their first
	// full list, and why; empty when ready.
	NotReady() []NotReady
	// WriteMetrics writes Prometheus text exposition format.
	WriteMetrics(w io.Writer)
}

// NotReady names a cluster that is not ready (ID absent in single mode)
// and the reason, e.g. `403 Forbidden from apiserver: ...`.
type NotReady struct {
	ID     string `json:"id,omitempty"`
	Reason string `json:"reason"`
}

// Paths of the control API.
const (
	DumpPath  = "/v1/discovery/kubernetes/dump"
	NodesPath = "/v1/discovery/kubernetes/nodes"
)

// Handler serves the control API of src.
func Handler(src Source) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+DumpPath, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, src.Dump())
	})
	mux.HandleFunc("GET "+NodesPath, func(w http.ResponseWriter, r *http.Request) {
		service := r.URL.Query().Get("service")
		if service == "" {
			writeJSON(w, http.StatusBadRequest, errorBody{Error: "missing query parameter service"})
			return
		}
		nodes, answer := src.Lookup(nil, service)
		switch answer {
		case shm.Found:
		case shm.NotReady: // not authoritative: the proxy should retry, not 404
			writeJSON(w, http.StatusServiceUnavailable, errorBody{"service " + service + " not found and the table is not ready", answer.String()})
			return
		case shm.Empty:
			writeJSON(w, http.StatusNotFound, errorBody{"service " + service + " has no address for that port", answer.String()})
			return
		default:
			writeJSON(w, http.StatusNotFound, errorBody{"service " + service + " not found", answer.String()})
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(append(shm.AppendNodesJSON(nil, nodes), '\n'))
	})
	handleProbes(mux, src)
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		src.WriteMetrics(w)
	})
	return mux
}

// HealthHandler serves /healthz and /readyz as Handler does, and nothing
// else: `kdisc run -health ADDR` serves it on its own listener, for
// kubelet probes on the pod IP, without exposing the dump, lookups or
// metrics there.
func HealthHandler(src Source) http.Handler {
	mux := http.NewServeMux()
	handleProbes(mux, src)
	return mux
}

func handleProbes(mux *http.ServeMux, src Source) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if nr := src.NotReady(); len(nr) > 0 {
			writeJSON(w, http.StatusServiceUnavailable, readyBody{Ready: false, NotReady: nr})
			return
		}
		writeJSON(w, http.StatusOK, readyBody{Ready: true})
	})
}

type errorBody struct {
	Error  string `json:"error"`
	Reason string `json:"reason,omitempty"` // unknown, empty or not_ready
}

type readyBody struct {
	Ready    bool       `json:"ready"`
	NotReady []NotReady `json:"not_ready,omitempty"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
