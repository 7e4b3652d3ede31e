package apiserver

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// caSource is the CA bundle that verifies the apiserver. Like a token file
// it is stat-ed on every TLS handshake and re-read when its size or
// modification time changes, because cert-manager and projected volumes
// rotate it in place. A file that is missing, empty or holds no
// certificate mid-rotation keeps the last good bundle.
type caSource struct {
	file string
	log  *slog.Logger

	mu      sync.Mutex
	pool    *x509.CertPool
	modTime time.Time
	size    int64
}

// newCASource reads file now, so that a wrong path fails at start.
func newCASource(file string, log *slog.Logger) (*caSource, error) {
	s := &caSource{file: file, log: log}
	fi, err := os.Stat(file)
	if err != nil {
		return nil, fmt.Errorf("apiserver: reading CA file: %w", err)
	}
	pool, err := s.read()
	if err != nil {
		return nil, err
	}
	s.pool, s.modTime, s.size = pool, fi.ModTime(), fi.Size()
	return s, nil
}

func (s *caSource) read() (*x509.CertPool, error) {
	pem, err := os.ReadFile(s.file)
	if err != nil {
		return nil, fmt.Errorf("apiserver: reading CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("apiserver: CA file %s holds no PEM certificate", s.file)
	}
	return pool, nil
}

// current returns the bundle, re-read if the file changed.
func (s *caSource) current() *x509.CertPool {
	s.mu.Lock()
	defer s.mu.Unlock()
	fi, err := os.Stat(s.file)
	if err != nil || fi.ModTime().Equal(s.modTime) && fi.Size() == s.size {
		return s.pool // unchanged, or mid-rotation: keep the last good one
	}
	pool, err := s.read()
	if err != nil {
		s.log.Warn("CA file changed but cannot be used; keeping the last good CA", "file", s.file, "error", err)
		return s.pool
	}
	s.pool, s.modTime, s.size = pool, fi.ModTime(), fi.Size()
	s.log.Info("CA file changed: re-read", "file", s.file)
	return pool
}

// verify checks the server's chain against the current bundle and its
// name, as crypto/tls does with RootCAs (the documented pattern for
// VerifyConnection with InsecureSkipVerify).
func (s *caSource) verify(serverName string) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return fmt.Errorf("apiserver: the server sent no certificate")
		}
		opts := x509.VerifyOptions{
			Roots:         s.current(),
			DNSName:       serverName,
			Intermediates: x509.NewCertPool(),
		}
		for _, cert := range cs.PeerCertificates[1:] {
			opts.Intermediates.AddCert(cert)
		}
		if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
			return &tls.CertificateVerificationError{UnverifiedCertificates: cs.PeerCertificates, Err: err}
		}
		return nil
	}
}
