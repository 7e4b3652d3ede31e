// Package apiserver is kdisc's HTTP client for the Kubernetes API server:
// it builds URLs, authenticates, verifies TLS and turns failures into
// *StatusError values. It knows nothing about Endpoints or watches; the
// listwatch package decides what to ask for.
//
// Over https it speaks HTTP/2 with health checks, as client-go does: when
// no frame arrived for HealthCheck, it sends a PING, and closes the
// connection when no answer comes for as long again. That is what notices a
// connection black-holed by a NAT, a load balancer or a wedged proxy (no
// FIN, and TCP keepalives answered by a middlebox) within seconds, where a
// quiet watch alone would wait for its idle timeout (bookmarks come about
// once a minute). Plain http (tests, local proxies) is HTTP/1.1.
package apiserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// InClusterCAFile is where Kubernetes mounts the cluster CA into a pod. It
// is used for https when Options.CAFile is empty and the file exists.
const InClusterCAFile = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"

// Options says how to reach and authenticate to one API server.
type Options struct {
	Schema string // "http" or "https"
	Host   string // IPv4, IPv6 (no brackets, no zone) or DNS name
	Port   int

	Token     string // a static bearer token; wins over TokenFile
	TokenFile string // a bearer token file, re-read when it changes

	CAFile             string // CA bundle for https, re-read when it changes; see InClusterCAFile
	InsecureSkipVerify bool   // service.ssl_verify: false
	CertFile, KeyFile  string // client certificate (mTLS), re-read on each handshake

	// What a kubeconfig may say besides the above (see kubeconfig.go).
	PathPrefix        string      // the server URL's path, e.g. "/k8s/clusters/c-1": prefixes every request
	TLSServerName     string      // verify the server certificate for this name (and send it as SNI) instead of Host
	CAData            []byte      // PEM CA bundle in memory (certificate-authority-data); not with CAFile
	NoInClusterCA     bool        // without CAFile and CAData use the system roots, never InClusterCAFile
	CertData, KeyData []byte      // client certificate in memory (client-certificate-data, client-key-data)
	Exec              *ExecConfig // credential plugin; not with Token, TokenFile or a client certificate

	Logger *slog.Logger // nil: slog.Default()

	// HealthCheck is how long an HTTP/2 connection may be silent before
	// a PING checks it (and then how long the PING may take): default
	// 15 s, so a black-holed connection is dropped within 30 s.
	HealthCheck time.Duration
}

// Client sends authenticated requests to one API server. It is safe for
// concurrent use.
type Client struct {
	base  string // scheme://host:port[/prefix]
	http  *http.Client
	token *tokenSource
	exec  *execSource // nil unless Options.Exec
	log   *slog.Logger
	warns sync.Map // Warning header texts already logged

	failure atomic.Value // Failure of the last request (LastFailure)
}

// New validates the options and builds a client. It reads the CA file now,
// so a wrong path fails at start, and again whenever it changes; token and
// certificate files are read when requests are made, so they may appear (or
// rotate) later.
func New(o Options) (*Client, error) {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	if o.Schema != "http" && o.Schema != "https" {
		return nil, fmt.Errorf("apiserver: schema %q: must be http or https", o.Schema)
	}
	if o.Host == "" || o.Port < 1 || o.Port > 65535 {
		return nil, fmt.Errorf("apiserver: bad address %q port %d", o.Host, o.Port)
	}
	if strings.Contains(o.Host, "%") {
		// The URL would need %25 for it, and no certificate names a zone.
		return nil, fmt.Errorf("apiserver: host %q: an IPv6 address with a zone is not supported", o.Host)
	}
	prefix, err := pathPrefix(o.PathPrefix)
	if err != nil {
		return nil, err
	}
	var execSrc *execSource
	if o.Exec != nil {
		if err := o.Exec.Validate(); err != nil {
			return nil, fmt.Errorf("apiserver: %w", err)
		}
		if o.Token != "" || o.TokenFile != "" || o.CertFile != "" || len(o.CertData) > 0 {
			return nil, fmt.Errorf("apiserver: exec plugin: not together with a token, a token file or a client certificate")
		}
		execSrc = newExecSource(o.Exec, log)
	}
	transport := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout: 10 * time.Second,
			// A peer that vanished (a black-holed NAT entry) is noticed
			// after about a minute instead of the kernel's default hours;
			// the watch then resumes from its resourceVersion.
			KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 30 * time.Second, Interval: 10 * time.Second, Count: 3},
		}).DialContext,
		TLSHandshakeTimeout: 10 * time.Second,
		// The apiserver sends a watch's headers at once, so this bounds a
		// hung server without cutting a long watch body.
		ResponseHeaderTimeout: 30 * time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   4,
	}
	if o.Schema == "https" {
		check := o.HealthCheck
		if check <= 0 {
			check = 15 * time.Second
		}
		transport.ForceAttemptHTTP2 = true
		transport.HTTP2 = &http.HTTP2Config{SendPingTimeout: check, PingTimeout: check}
		tc, err := tlsConfig(o, log, execSrc)
		if err != nil {
			return nil, err
		}
		transport.TLSClientConfig = tc
	}
	c := &Client{
		base: o.Schema + "://" + net.JoinHostPort(o.Host, strconv.Itoa(o.Port)) + prefix,
		http: &http.Client{Transport: transport},
		log:  log,
		exec: execSrc,
	}
	if o.Token != "" || o.TokenFile != "" {
		c.token = &tokenSource{static: o.Token, file: o.TokenFile}
	}
	return c, nil
}

// tlsConfig verifies the server against CAFile, else the in-pod CA, else
// the system roots; InsecureSkipVerify is an explicit, logged opt-out.
func tlsConfig(o Options, log *slog.Logger, execSrc *execSource) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.TLSServerName}
	serverName := o.Host
	if o.TLSServerName != "" {
		serverName = o.TLSServerName
	}
	if o.InsecureSkipVerify {
		log.Warn("TLS verification of the apiserver is off (ssl_verify: false, or insecure-skip-tls-verify in a kubeconfig)", "host", o.Host)
		tc.InsecureSkipVerify = true
	}
	if len(o.CAData) > 0 {
		if o.CAFile != "" {
			return nil, fmt.Errorf("apiserver: CA data and CA file go not together")
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(o.CAData) {
			return nil, fmt.Errorf("apiserver: CA data holds no PEM certificate")
		}
		tc.RootCAs = pool
	}
	if err := clientCertificate(o, tc, execSrc); err != nil {
		return nil, err
	}
	caFile := o.CAFile
	if caFile == "" && len(o.CAData) == 0 && !o.NoInClusterCA {
		if _, err := os.Stat(InClusterCAFile); err == nil {
			caFile = InClusterCAFile
		}
	}
	if caFile != "" && !o.InsecureSkipVerify {
		// The CA file is re-read when it changes, so verification is done
		// here against its current content (InsecureSkipVerify only
		// hands it over to VerifyConnection).
		ca, err := newCASource(caFile, log)
		if err != nil {
			return nil, err
		}
		tc.InsecureSkipVerify = true
		tc.VerifyConnection = ca.verify(serverName)
	}
	return tc, nil
}

// clientCertificate sets the client certificate: files re-read on each
// handshake, data parsed now, or the exec plugin's current one.
func clientCertificate(o Options, tc *tls.Config, execSrc *execSource) error {
	if len(o.CertData) > 0 || len(o.KeyData) > 0 {
		if len(o.CertData) == 0 || len(o.KeyData) == 0 {
			return fmt.Errorf("apiserver: client certificate data and key data go together")
		}
		if o.CertFile != "" || o.KeyFile != "" {
			return fmt.Errorf("apiserver: client certificate: data and files go not together")
		}
		cert, err := tls.X509KeyPair(o.CertData, o.KeyData)
		if err != nil {
			return fmt.Errorf("apiserver: client certificate data: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
		return nil
	}
	if execSrc != nil {
		// Get has fetched the credential before the handshake; an
		// expired one is refreshed here too.
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			c, err := execSrc.get(context.Background())
			if err != nil || c.cert == nil {
				return &tls.Certificate{}, nil // none: the server says why
			}
			return c.cert, nil
		}
		return nil
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return fmt.Errorf("apiserver: cert_file and key_file go together")
	}
	if o.CertFile != "" {
		certFile, keyFile := o.CertFile, o.KeyFile
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			cert, err := tls.LoadX509KeyPair(certFile, keyFile)
			if err != nil {
				return nil, &clientCertError{err}
			}
			return &cert, nil
		}
	}
	return nil
}

// pathPrefix normalizes a server URL's path: "" or "/k8s/c-1" (no trailing
// slash).
func pathPrefix(p string) (string, error) {
	if p == "" || p == "/" {
		return "", nil
	}
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("apiserver: path prefix %q: must start with /", p)
	}
	return strings.TrimRight(p, "/"), nil
}

// URL returns the absolute URL of path with the query q.
func (c *Client) URL(path string, q url.Values) string {
	if len(q) == 0 {
		return c.base + path
	}
	return c.base + path + "?" + q.Encode()
}

// Get sends GET path?q. A 2xx answer is returned with its body open for the
// caller to stream and close. Anything else is returned as *StatusError
// (the body drained and closed); transport failures as they come.
//
// A 401 refreshes the credential that was refused and retries once: an
// exec plugin runs again; a token file is read again even when its size
// and mtime look unchanged (a writer may replace it in place within one
// mtime tick), and the request is retried when the file now holds another
// token.
func (c *Client) Get(ctx context.Context, path string, q url.Values) (*http.Response, error) {
	return c.GetAccepting(ctx, path, q, MediaJSON)
}

// Media types the apiserver speaks, and the Accept header that asks for
// protobuf with JSON as the fallback, as kube-proxy and the kubelet send it.
const (
	MediaJSON            = "application/json"
	MediaProtobuf        = "application/vnd.kubernetes.protobuf"
	AcceptProtobufOrJSON = MediaProtobuf + ", " + MediaJSON
)

// IsProtobuf reports whether a Content-Type names the Kubernetes protobuf
// media type (parameters aside).
func IsProtobuf(contentType string) bool {
	mt, _, _ := strings.Cut(contentType, ";")
	return strings.EqualFold(strings.TrimSpace(mt), MediaProtobuf)
}

// GetAccepting is Get with the given Accept header. The caller checks the
// answer's Content-Type; an error answer is read as a Status in JSON or
// protobuf, whichever its Content-Type names.
func (c *Client) GetAccepting(ctx context.Context, path string, q url.Values, accept string) (*http.Response, error) {
	resp, sent, err := c.get(ctx, path, q, accept)
	if !isUnauthorized(err) {
		return resp, err
	}
	switch {
	case sent.exec != nil:
		// The plugin's credential was refused (revoked, or expired
		// earlier than it said): run the plugin again and retry once.
		c.exec.invalidate(sent.exec)
		if sent.exec.cert != nil {
			c.http.CloseIdleConnections() // they carry the refused certificate
		}
		c.log.Info("apiserver refused the exec plugin's credential (401): running the plugin again")
		resp, sent, err = c.get(ctx, path, q, accept)
		if sent.exec != nil && isUnauthorized(err) {
			c.exec.invalidate(sent.exec) // refused too: the next request runs the plugin again
		}
	case sent.token != "" && c.token.reread(sent.token):
		c.log.Info("apiserver refused the token (401) and the token file holds another one: retrying with it", "token_file", c.token.file)
		resp, _, err = c.get(ctx, path, q, accept)
	}
	return resp, err
}

// sentCred is the credential a request carried.
type sentCred struct {
	exec  *execCred // the exec plugin's, or nil
	token string    // the bearer token from Token or TokenFile, or ""
}

// get sends one request and says which credential it carried.
func (c *Client) get(ctx context.Context, path string, q url.Values, accept string) (*http.Response, sentCred, error) {
	var sent sentCred
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL(path, q), nil)
	if err != nil {
		return nil, sent, err
	}
	req.Header.Set("Accept", accept)
	req.Header.Set("User-Agent", "kdisc")
	switch {
	case c.token != nil:
		if sent.token, err = c.token.get(); err != nil {
			c.failure.Store(FailureTokenFile)
			return nil, sent, err
		}
		req.Header.Set("Authorization", "Bearer "+sent.token)
	case c.exec != nil:
		if sent.exec, err = c.exec.get(ctx); err != nil {
			c.failure.Store(FailureExec)
			return nil, sent, err
		}
		if sent.exec.token != "" {
			req.Header.Set("Authorization", "Bearer "+sent.exec.token)
		}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.failure.Store(transportFailure(err))
		return nil, sent, err
	}
	c.failure.Store(FailureNone)
	c.logWarnings(resp.Header.Values("Warning"))
	if resp.StatusCode/100 == 2 {
		return resp, sent, nil
	}
	defer resp.Body.Close()
	return nil, sent, statusFromResponse(resp)
}

func isUnauthorized(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Code == http.StatusUnauthorized
}

// logWarnings logs each distinct Warning header once. The apiserver sends
// the same one (e.g. "v1 Endpoints is deprecated in v1.33+; use
// discovery.k8s.io/v1 EndpointSlice") on every list and watch.
func (c *Client) logWarnings(warnings []string) {
	for _, w := range warnings {
		if _, seen := c.warns.LoadOrStore(w, struct{}{}); !seen {
			c.log.Warn("apiserver warning", "warning", w)
		}
	}
}

// CloseIdleConnections closes kept-alive connections; Discovery.Close
// calls it.
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }
