package listwatch

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kdisc/kdisc/apiserver"
	"github.com/kdisc/kdisc/internal/fakeapi"
	"github.com/kdisc/kdisc/shm"
)

// Against the fake apiserver, which answers in the format asked for: by
// default every LIST, streaming list and WATCH asks for protobuf (with JSON
// as the fallback) and the table is the same as with Options.JSON, which
// asks for JSON only: pages, a streaming list, watch events of every type,
// and a malformed object skipped alike.
func TestBothWireFormatsAgainstTheFake(t *testing.T) {
	for _, tc := range []struct {
		name       string
		json       bool
		streaming  bool
		wantAccept string
	}{
		{"protobuf pages", false, false, "application/vnd.kubernetes.protobuf, application/json"},
		{"protobuf streaming", false, true, "application/vnd.kubernetes.protobuf, application/json"},
		{"json pages", true, false, "application/json"},
		{"json streaming", true, true, "application/json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := fakeapi.New(t)
			for _, ns := range []string{"a", "b", "c"} {
				api.PutEndpoints(endpoints(ns, "web", 80, "10.0.0.1", "10.0.0.2"))
			}
			api.Fail(fakeapi.IsList(""), fakeapi.Malformed(), 1)
			api.Fail(fakeapi.IsWatch(""), fakeapi.Malformed(), 1)
			o := fastOptions()
			o.JSON, o.NoStreamingList, o.PageSize = tc.json, !tc.streaming, 2
			h := start(t, api, o)
			eventually(t, "ready", h.w.Ready)
			h.waitHosts("b/web:http", "10.0.0.1:80", "10.0.0.2:80")
			api.WaitWatchers(1)
			api.PutEndpoints(endpoints("b", "web", 80, "10.0.0.3"))
			api.PutEndpoints(endpoints("d", "new", 81, "fd00::1"))
			api.DeleteEndpoints("a", "web")
			h.waitHosts("b/web:http", "10.0.0.3:80")
			h.waitHosts("d/new:http", "fd00::1:81")
			h.waitHosts("a/web:http")
			assert.Equal(t, []string{"10.0.0.1:80", "10.0.0.2:80"}, h.hosts("c/web:http"))
			assert.NotZero(t, h.w.Stats().Skipped.Load(), "the malformed object is skipped")
			for _, r := range api.Requests() {
				if r.Resource != "" {
					assert.Equal(t, tc.wantAccept, r.Accept, "request %d %s", r.Seq, r.Path)
				}
			}
		})
	}
}

// A 2xx answer in a format kdisc does not read (a captive portal's HTML)
// is an error naming its Content-Type, not a misread list; a non-2xx
// answer that is not a Status (a load balancer's text/plain 503) counts
// by its code, in either format asked.
func TestUnreadableAnswers(t *testing.T) {
	for _, tc := range []struct {
		code     int
		ct, want string
	}{
		{http.StatusOK, "text/html; charset=utf-8", `unsupported Content-Type "text/html; charset=utf-8"`},
		{http.StatusServiceUnavailable, "text/plain", "503 Service Unavailable from apiserver"},
		{http.StatusServiceUnavailable, "application/vnd.kubernetes.protobuf", "503 Service Unavailable from apiserver"},
	} {
		for _, asJSON := range []bool{false, true} {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tc.ct)
				w.WriteHeader(tc.code)
				_, _ = w.Write([]byte("<html>no</html>\n"))
			}))
			u, _ := url.Parse(srv.URL)
			port, _ := strconv.Atoi(u.Port())
			c, err := apiserver.New(apiserver.Options{Schema: "http", Host: u.Hostname(), Port: port})
			require.NoError(t, err)
			table, err := shm.Create("", 1<<16)
			require.NoError(t, err)
			o := fastOptions()
			o.Client, o.Store, o.JSON = c, table, asJSON
			w := New(o)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); w.Run(ctx) }()
			eventually(t, "the failure recorded", func() bool { return w.Status().Error != "" })
			st := w.Status()
			cancel()
			<-done
			srv.Close()
			table.Close()
			assert.Contains(t, st.Error, tc.want, "json=%v %d %s", asJSON, tc.code, tc.ct)
			assert.False(t, st.Ready)
		}
	}
}
