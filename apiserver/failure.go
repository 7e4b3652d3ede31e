package apiserver

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
)

// Failure is a fixed word for why a request got no answer from the
// apiserver. Unlike the error's text, it holds nothing from outside (an
// exec plugin's stderr, a file path, a server's name), so it may be shown
// where the error may not: /readyz on the pod network.
type Failure string

const (
	FailureNone        Failure = ""            // the last request was answered (whatever its status code)
	FailureTokenFile   Failure = "token_file"  // the token file could not be read or is empty
	FailureExec        Failure = "exec"        // the exec credential plugin failed
	FailureTLS         Failure = "tls"         // the TLS handshake failed: certificate, CA, client certificate, not TLS
	FailureUnreachable Failure = "unreachable" // no connection: DNS, refused, timeout, reset
)

// LastFailure is why the last request got no answer, FailureNone when it
// got one. A failure after the answer (a watch stream cut) does not count.
func (c *Client) LastFailure() Failure {
	f, _ := c.failure.Load().(Failure)
	return f
}

// transportFailure classifies an error of http.Client.Do.
func transportFailure(err error) Failure {
	var (
		verify    *tls.CertificateVerificationError
		authority x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		record    tls.RecordHeaderError
		alert     tls.AlertError
		cert      *clientCertError
		op        *net.OpError
	)
	switch {
	case errors.As(err, &verify), errors.As(err, &authority), errors.As(err, &hostname),
		errors.As(err, &invalid), errors.As(err, &record), errors.As(err, &alert), errors.As(err, &cert):
		return FailureTLS
	case errors.As(err, &op) && op.Op == "remote error":
		// An alert from the server (crypto/tls wraps its unexported
		// alert type so): e.g. "tls: certificate required".
		return FailureTLS
	case strings.Contains(err.Error(), "tls: "), strings.Contains(err.Error(), "TLS handshake"),
		strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		// crypto/tls's other handshake errors are plain errors.New("tls:
		// ..."); net/http turns a RecordHeaderError from a plain http
		// server into the last one, and a slow handshake into "TLS
		// handshake timeout".
		return FailureTLS
	}
	return FailureUnreachable
}

// clientCertError is a client certificate that could not be loaded at a
// handshake.
type clientCertError struct{ err error }

func (e *clientCertError) Error() string { return "apiserver: client certificate: " + e.err.Error() }
func (e *clientCertError) Unwrap() error { return e.err }
