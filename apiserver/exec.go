package apiserver

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	jsoniter "github.com/json-iterator/go"
)

// The exec credential API versions kdisc speaks (client.authentication.k8s.io).
const (
	ExecV1      = "client.authentication.k8s.io/v1"
	ExecV1beta1 = "client.authentication.k8s.io/v1beta1"
)

// ExecConfig is a kubeconfig user's `exec` credential plugin, as kubectl
// runs it: the command prints an ExecCredential whose status holds a
// bearer token or a client certificate, optionally with an
// expirationTimestamp. kdisc runs it without a terminal (stdin is
// /dev/null, spec.interactive is false), at the first request that needs
// it, again once the credential expires, and again after a 401.
type ExecConfig struct {
	APIVersion      string // ExecV1 or ExecV1beta1
	Command         string // a path (already resolved) or a name looked up in $PATH
	Args            []string
	Env             []ExecEnv // added to kdisc's own environment
	InteractiveMode string    // Never or IfAvailable ("" is IfAvailable for v1beta1, refused for v1); Always is refused
	InstallHint     string    // shown when the command is not found

	// ProvideClusterInfo passes Cluster in KUBERNETES_EXEC_INFO's
	// spec.cluster.
	ProvideClusterInfo bool
	Cluster            ExecCluster
}

// ExecEnv is one environment variable of an exec plugin.
type ExecEnv struct {
	Name, Value string
}

// ExecCluster is spec.cluster of the ExecCredential a plugin receives
// when it asks for it (provideClusterInfo: true).
type ExecCluster struct {
	Server                   string `json:"server"`
	TLSServerName            string `json:"tls-server-name,omitempty"`
	InsecureSkipTLSVerify    bool   `json:"insecure-skip-tls-verify,omitempty"`
	CertificateAuthorityData []byte `json:"certificate-authority-data,omitempty"`
	Config                   any    `json:"config,omitempty"` // extensions["client.authentication.k8s.io/exec"]
}

// Validate checks what kubectl checks before running a plugin, and
// refuses interactiveMode Always: kdisc is a daemon, nobody answers a
// prompt.
func (e *ExecConfig) Validate() error {
	if e.APIVersion != ExecV1 && e.APIVersion != ExecV1beta1 {
		if e.APIVersion == "" {
			return fmt.Errorf("exec: apiVersion: must be %s or %s", ExecV1, ExecV1beta1)
		}
		return fmt.Errorf("exec: apiVersion %q: must be %s or %s", e.APIVersion, ExecV1, ExecV1beta1)
	}
	if e.Command == "" {
		return errors.New("exec: command is required")
	}
	switch e.InteractiveMode {
	case "Never", "IfAvailable":
	case "":
		if e.APIVersion == ExecV1 {
			return fmt.Errorf("exec: interactiveMode is required for %s (Never or IfAvailable)", ExecV1)
		}
	case "Always":
		return errors.New("exec: interactiveMode Always: kdisc never runs a plugin interactively (it has no terminal); use Never or IfAvailable")
	default:
		return fmt.Errorf("exec: interactiveMode %q: must be Never, IfAvailable or Always", e.InteractiveMode)
	}
	for i, v := range e.Env {
		if v.Name == "" {
			return fmt.Errorf("exec: env[%d]: name is required", i)
		}
	}
	return nil
}

// execTimeout bounds one run of a plugin (kubectl has no bound; a hung
// plugin must not hang kdisc's list-watch forever).
const execTimeout = 2 * time.Minute

// maxExecOutput bounds what is read of a plugin's stdout and stderr.
const maxExecOutput = 1 << 20

// execCred is one credential a plugin printed.
type execCred struct {
	token  string
	cert   *tls.Certificate
	expiry time.Time // zero: does not expire
}

// execSource runs the plugin when there is no valid credential, one run at
// a time; concurrent requests wait for it and share its result.
type execSource struct {
	cfg ExecConfig
	log *slog.Logger
	now func() time.Time

	mu  sync.Mutex
	cur *execCred
}

func newExecSource(cfg *ExecConfig, log *slog.Logger) *execSource {
	if log == nil {
		log = slog.Default()
	}
	return &execSource{cfg: *cfg, log: log, now: time.Now}
}

// get returns the cached credential, or runs the plugin for a new one.
func (s *execSource) get(ctx context.Context) (*execCred, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.cur; c != nil && (c.expiry.IsZero() || s.now().Before(c.expiry)) {
		return c, nil
	}
	c, err := s.run(ctx)
	if err != nil {
		return nil, err
	}
	s.cur = c
	return c, nil
}

// invalidate drops c after the apiserver refused it (401), unless a newer
// credential already replaced it.
func (s *execSource) invalidate(c *execCred) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == c {
		s.cur = nil
	}
}

// execInfo is the ExecCredential passed in KUBERNETES_EXEC_INFO.
type execInfo struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Spec       struct {
		Cluster     *ExecCluster `json:"cluster,omitempty"`
		Interactive bool         `json:"interactive"`
	} `json:"spec"`
}

// execCredential is what the plugin prints.
type execCredential struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Status     *struct {
		ExpirationTimestamp   *string `json:"expirationTimestamp"`
		Token                 string  `json:"token"`
		ClientCertificateData string  `json:"clientCertificateData"`
		ClientKeyData         string  `json:"clientKeyData"`
	} `json:"status"`
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (s *execSource) run(ctx context.Context) (*execCred, error) {
	ctx, cancel := context.WithTimeout(ctx, execTimeout)
	defer cancel()
	var info execInfo
	info.APIVersion, info.Kind = s.cfg.APIVersion, "ExecCredential"
	if s.cfg.ProvideClusterInfo {
		info.Spec.Cluster = &s.cfg.Cluster
	}
	infoJSON, err := json.Marshal(info)
	if err != nil {
		return nil, fmt.Errorf("exec plugin %s: %w", s.cfg.Command, err)
	}
	cmd := exec.CommandContext(ctx, s.cfg.Command, s.cfg.Args...)
	cmd.Env = os.Environ()
	for _, v := range s.cfg.Env {
		cmd.Env = append(cmd.Env, v.Name+"="+v.Value)
	}
	cmd.Env = append(cmd.Env, "KUBERNETES_EXEC_INFO="+string(infoJSON))
	stdout, stderr := &limitedBuffer{max: maxExecOutput}, &limitedBuffer{max: 4096}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, stdout, stderr // stdin: /dev/null, never a terminal
	start := time.Now()
	if err := cmd.Run(); err != nil {
		msg := fmt.Sprintf("exec plugin %s: %v", s.cfg.Command, err)
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			if s.cfg.InstallHint != "" {
				msg += "; " + strings.TrimSpace(s.cfg.InstallHint)
			}
		} else if e := strings.TrimSpace(stderr.String()); e != "" {
			msg += ": " + e
		}
		return nil, errors.New(msg)
	}
	c, err := s.parse(stdout.Bytes())
	if err != nil {
		return nil, fmt.Errorf("exec plugin %s: %w", s.cfg.Command, err)
	}
	attrs := []any{"command", s.cfg.Command, "took", time.Since(start).Round(time.Millisecond)}
	if !c.expiry.IsZero() {
		attrs = append(attrs, "expires", c.expiry)
	}
	s.log.Info("exec credential plugin ran", attrs...)
	return c, nil
}

// parse reads the plugin's ExecCredential. Messages never quote the
// output: it holds the secret.
func (s *execSource) parse(out []byte) (*execCred, error) {
	var ec execCredential
	if err := jsoniter.ConfigCompatibleWithStandardLibrary.Unmarshal(out, &ec); err != nil {
		return nil, errors.New("its output is not an ExecCredential in JSON")
	}
	if ec.APIVersion != s.cfg.APIVersion {
		return nil, fmt.Errorf("it printed apiVersion %q, want %q (the exec apiVersion of the kubeconfig)", ec.APIVersion, s.cfg.APIVersion)
	}
	if ec.Kind != "ExecCredential" {
		return nil, fmt.Errorf("it printed kind %q, want ExecCredential", ec.Kind)
	}
	if ec.Status == nil {
		return nil, errors.New("its ExecCredential has no status")
	}
	st := ec.Status
	c := &execCred{token: st.Token}
	if st.ExpirationTimestamp != nil && *st.ExpirationTimestamp != "" {
		t, err := time.Parse(time.RFC3339, *st.ExpirationTimestamp)
		if err != nil {
			return nil, fmt.Errorf("status.expirationTimestamp %q: want RFC 3339", *st.ExpirationTimestamp)
		}
		c.expiry = t
	}
	switch {
	case st.ClientCertificateData != "" || st.ClientKeyData != "":
		if st.ClientCertificateData == "" || st.ClientKeyData == "" {
			return nil, errors.New("status.clientCertificateData and status.clientKeyData go together")
		}
		cert, err := tls.X509KeyPair([]byte(st.ClientCertificateData), []byte(st.ClientKeyData))
		if err != nil {
			return nil, fmt.Errorf("status client certificate: %w", err)
		}
		c.cert = &cert
	case st.Token == "":
		return nil, errors.New("its status has neither a token nor clientCertificateData and clientKeyData")
	}
	return c, nil
}
