package dump

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"

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
// and the reason, e.g. `403 Forbidden from apiserver: ...`. The control
// API shows Reason; the probe listener (HealthHandler) shows Class in its
// place.
type NotReady struct {
	ID     string `json:"id,omitempty"`
	Reason string `json:"reason"`
	Class  string `json:"-"` // one of Classes; "" counts as ClassUnknown
}

// The classes of NotReady: fixed words that say what kind of failure keeps
// a cluster from being ready and hold no text from outside (an exec
// plugin's stderr, an apiserver's message, a file path), so the probe
// listener on the pod network may show them. They are the list-watch's
// error classes (listwatch.Classify) with "transport" split by what the
// apiserver client saw (apiserver.Failure).
const (
	ClassStarting                = "starting"                   // the first list has not finished, and nothing failed yet
	ClassNotRunning              = "not_running"                // attached: no running kdisc process has finished a full list into the table
	ClassUnknown                 = "unknown"                    // none of the others
	ClassTokenFile               = "token_file"                 // the token file is missing, unreadable or empty
	ClassExec                    = "exec"                       // the exec credential plugin failed
	ClassTLS                     = "tls"                        // the TLS handshake failed (certificate, CA, client certificate, not TLS)
	ClassUnreachable             = "unreachable"                // no connection (DNS, refused, timeout, reset)
	ClassTransport               = "transport"                  // the connection broke after the apiserver answered (a stream cut or garbled)
	ClassStalled                 = "stalled"                    // nothing received for the idle timeout
	ClassUnauthorized            = "unauthorized"               // 401: the credentials are refused
	ClassForbidden               = "forbidden"                  // 403: RBAC does not allow list and watch
	ClassBadRequest              = "bad_request"                // other 4xx: a selector or API the server refuses
	ClassThrottled               = "throttled"                  // 429
	ClassServerError             = "server_error"               // 5xx
	ClassExpired                 = "expired"                    // 410: the list must start again
	ClassTooLargeResourceVersion = "too_large_resource_version" // the server is behind
	ClassWatchError              = "watch_error"                // an ERROR event in a watch
	ClassVeryShortWatch          = "very_short_watch"           // a watch ended at once with no event
)

// Classes lists every class, in the order of the constants.
var Classes = []string{
	ClassStarting, ClassNotRunning, ClassUnknown, ClassTokenFile, ClassExec, ClassTLS,
	ClassUnreachable, ClassTransport, ClassStalled, ClassUnauthorized, ClassForbidden,
	ClassBadRequest, ClassThrottled, ClassServerError, ClassExpired,
	ClassTooLargeResourceVersion, ClassWatchError, ClassVeryShortWatch,
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
	handleProbes(mux, src, false)
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		src.WriteMetrics(w)
	})
	return mux
}

// HealthHandler serves /healthz and /readyz as Handler does, and nothing
// else: `kdisc run -health ADDR` serves it on its own listener, for
// kubelet probes on the pod IP, without exposing the dump, lookups or
// metrics there. Its /readyz has the same shape, but each reason is the
// class word (NotReady.Class; "unknown" for anything not in Classes): the
// pod network sees no text from outside.
func HealthHandler(src Source) http.Handler {
	mux := http.NewServeMux()
	handleProbes(mux, src, true)
	return mux
}

func handleProbes(mux *http.ServeMux, src Source, classOnly bool) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		nr := src.NotReady()
		if len(nr) == 0 {
			writeJSON(w, http.StatusOK, readyBody{Ready: true})
			return
		}
		if classOnly {
			words := make([]NotReady, len(nr))
			for i, n := range nr {
				words[i] = NotReady{ID: n.ID, Reason: ClassUnknown}
				if slices.Contains(Classes, n.Class) {
					words[i].Reason = n.Class
				}
			}
			nr = words
		}
		writeJSON(w, http.StatusServiceUnavailable, readyBody{Ready: false, NotReady: nr})
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
