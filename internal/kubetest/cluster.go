package kubetest

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Options tunes Start. The zero value is what the end-to-end tests use.
type Options struct {
	// TempDir is the parent of the cluster folder (default os.TempDir()).
	TempDir string
	// KeepDir keeps the cluster folder (logs, certificates, etcd data) after
	// Stop, for debugging. The environment variable KDISC_KEEP=1 does the same.
	KeepDir bool
	// ReadyTimeout bounds the wait for etcd and for the apiserver's /readyz
	// (default 90 s; a cold start takes about 10-20 s here).
	ReadyTimeout time.Duration
	// APIServerArgs are extra kube-apiserver flags, appended after the
	// defaults (a repeated flag: the last one wins), for example
	// "--watch-cache=false" or "--min-request-timeout=10".
	APIServerArgs []string
	// EtcdArgs are extra etcd flags, appended after the defaults.
	EtcdArgs []string
	// APIServerBin and EtcdBin skip Binaries when both are set.
	APIServerBin, EtcdBin string
	// Logf receives progress lines (e.g. t.Logf); nil discards them.
	Logf func(format string, args ...any)
}

// Identity is a user known to the apiserver through its static token file.
type Identity struct {
	User      string
	Groups    []string
	Token     string
	TokenFile string // holds Token, without a trailing newline
}

// Names of the identities every cluster has.
const (
	UserAdmin     = "admin"     // group system:masters: may do anything
	UserDiscovery = "discovery" // bound to ClusterRole kdisc-discovery by rbac.yaml
	UserNoRights  = "norights"  // authenticated, no RBAC grant at all
)

// SpareUsers are authenticated identities with no rights, for tests that
// grant and revoke rights themselves (GrantDiscovery / RevokeDiscovery).
var SpareUsers = []string{"spare1", "spare2", "spare3", "spare4", "spare5", "spare6"}

// Credentials is what a client needs to talk to the apiservers of a
// cluster; all apiservers of one Cluster share it.
type Credentials struct {
	CAFile string // PEM CA that signed the serving certificate (and client certs)

	AdminToken, DiscoveryToken, NoRightsToken             string
	AdminTokenFile, DiscoveryTokenFile, NoRightsTokenFile string

	// Client certificates (mTLS) for the users "admin" (group system:masters)
	// and "discovery" (same RBAC grant as the discovery token).
	AdminCertFile, AdminKeyFile         string
	DiscoveryCertFile, DiscoveryKeyFile string

	// Users holds every identity by user name: admin, discovery, norights
	// and SpareUsers.
	Users map[string]Identity
}

// Cluster is an etcd plus one kube-apiserver (and optionally more, see
// StartSecondAPIServer) running on loopback. The embedded *APIServer is the
// first apiserver: c.URL, c.Port, c.Do, c.ApplyEndpoints ... act on it.
type Cluster struct {
	*APIServer

	Dir     string // cluster folder: pki/, tokens/, etcd data, *.log
	EtcdURL string // http://127.0.0.1:PORT (plain HTTP, loopback only)
	EtcdLog string

	opts    Options
	pki     *pki
	bin     string // kube-apiserver binary
	etcd    *proc
	baseArg []string

	mu      sync.Mutex
	servers []*APIServer // all apiservers, first is c.APIServer
	stopped bool
}

// APIServer is one kube-apiserver process of a Cluster. It keeps its port
// and its etcd prefix across StopAPIServer / StartAPIServer.
type APIServer struct {
	Credentials

	URL        string // https://127.0.0.1:PORT
	Host       string // 127.0.0.1
	Port       int
	EtcdPrefix string
	LogFile    string

	cluster   *Cluster
	args      []string
	client    *http.Client
	tlsConfig *tls.Config // pristine: the transport adds h2 to its own copy

	mu   sync.Mutex
	proc *proc
}

func (o *Options) logf(format string, args ...any) {
	if o.Logf != nil {
		o.Logf(format, args...)
	}
}

func randomToken() string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// Start creates a cluster folder, generates certificates and tokens, starts
// etcd and kube-apiserver on free loopback ports, waits for /readyz and
// applies testdata/kube/rbac.yaml. Call Stop when done (also on failure
// paths: Start itself cleans up when it returns an error).
func Start(ctx context.Context, opts Options) (c *Cluster, err error) {
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = 90 * time.Second
	}
	if os.Getenv("KDISC_KEEP") == "1" {
		opts.KeepDir = true
	}
	apiBin, etcdBin := opts.APIServerBin, opts.EtcdBin
	if apiBin == "" || etcdBin == "" {
		if apiBin, etcdBin, err = Binaries(ctx); err != nil {
			return nil, err
		}
	}
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	rbac, err := os.ReadFile(filepath.Join(root, "testdata", "kube", "rbac.yaml"))
	if err != nil {
		return nil, fmt.Errorf("kubetest: %w", err)
	}
	removeStaleDirs(opts.TempDir)
	dir, err := os.MkdirTemp(opts.TempDir, dirPrefix)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return nil, err
	}
	c = &Cluster{Dir: dir, opts: opts, bin: apiBin, EtcdLog: filepath.Join(dir, "etcd.log")}
	defer func() {
		if err != nil {
			c.Stop()
			c = nil
		}
	}()
	start := time.Now()

	if c.pki, err = newPKI(filepath.Join(dir, "pki")); err != nil {
		return c, err
	}
	creds, tokenCSV, err := c.makeCredentials()
	if err != nil {
		return c, err
	}

	if err = c.startEtcd(ctx, etcdBin); err != nil {
		return c, err
	}
	opts.logf("kubetest: etcd ready at %s (%v)", c.EtcdURL, time.Since(start).Round(time.Millisecond))

	c.baseArg = []string{
		"--etcd-servers=" + c.EtcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--endpoint-reconciler-type=none",
		"--service-cluster-ip-range=10.96.0.0/16",
		"--service-account-key-file=" + c.pki.saPubFile,
		"--service-account-signing-key-file=" + c.pki.saKeyFile,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--authorization-mode=RBAC",
		"--token-auth-file=" + tokenCSV,
		"--client-ca-file=" + c.pki.caFile,
		"--tls-cert-file=" + c.pki.certFile,
		"--tls-private-key-file=" + c.pki.keyFile,
		"--profiling=false",
		// Without this, SIGTERM waits up to --request-timeout (60 s) for open
		// watches to end; with it, the server stops 2 s after in-flight
		// short requests drained (new ones get 429 + Retry-After meanwhile).
		"--shutdown-send-retry-after=true",
	}
	a, err := c.newAPIServer(ctx, creds, "/registry", "kube-apiserver.log", opts.APIServerArgs)
	if err != nil {
		return c, err
	}
	c.APIServer = a

	if err = a.applyRBAC(ctx, rbac); err != nil {
		return c, err
	}
	return c, nil
}

const (
	dirPrefix = "kdisc-kube-"
	ownerFile = "owner.pid"
)

// removeStaleDirs removes cluster folders left by processes that were
// killed before they could clean up (their children died with them through
// Pdeathsig): folders whose owner.pid names no live process.
func removeStaleDirs(parent string) {
	if parent == "" {
		parent = os.TempDir()
	}
	dirs, _ := filepath.Glob(filepath.Join(parent, dirPrefix+"*"))
	for _, d := range dirs {
		fi, err := os.Stat(d)
		if err != nil || !fi.IsDir() || time.Since(fi.ModTime()) < time.Minute {
			continue
		}
		b, err := os.ReadFile(filepath.Join(d, ownerFile))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			_ = os.RemoveAll(d)
		}
	}
}

func (c *Cluster) makeCredentials() (Credentials, string, error) {
	tokDir := filepath.Join(c.Dir, "tokens")
	if err := os.MkdirAll(tokDir, 0o700); err != nil {
		return Credentials{}, "", err
	}
	cr := Credentials{CAFile: c.pki.caFile, Users: map[string]Identity{}}
	var csv strings.Builder
	users := append([]string{UserAdmin, UserDiscovery, UserNoRights}, SpareUsers...)
	for i, u := range users {
		id := Identity{User: u, Token: randomToken(), TokenFile: filepath.Join(tokDir, u+".token")}
		if u == UserAdmin {
			id.Groups = []string{"system:masters"}
		}
		if err := os.WriteFile(id.TokenFile, []byte(id.Token), 0o600); err != nil {
			return cr, "", err
		}
		// token,user,uid,"group1,group2"
		fmt.Fprintf(&csv, "%s,%s,uid-%d,%q\n", id.Token, u, i, strings.Join(id.Groups, ","))
		cr.Users[u] = id
	}
	cr.AdminToken, cr.AdminTokenFile = cr.Users[UserAdmin].Token, cr.Users[UserAdmin].TokenFile
	cr.DiscoveryToken, cr.DiscoveryTokenFile = cr.Users[UserDiscovery].Token, cr.Users[UserDiscovery].TokenFile
	cr.NoRightsToken, cr.NoRightsTokenFile = cr.Users[UserNoRights].Token, cr.Users[UserNoRights].TokenFile
	var err error
	if cr.AdminCertFile, cr.AdminKeyFile, err = c.pki.clientCert(UserAdmin, "system:masters"); err != nil {
		return cr, "", err
	}
	if cr.DiscoveryCertFile, cr.DiscoveryKeyFile, err = c.pki.clientCert(UserDiscovery); err != nil {
		return cr, "", err
	}
	csvFile := filepath.Join(tokDir, "tokens.csv")
	return cr, csvFile, os.WriteFile(csvFile, []byte(csv.String()), 0o600)
}

// startEtcd starts etcd on two free ports, retrying with new ports when one
// was taken in the meantime.
func (c *Cluster) startEtcd(ctx context.Context, bin string) error {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		ports, err := freePorts(2)
		if err != nil {
			return err
		}
		client := "http://" + hostPort(ports[0])
		peer := "http://" + hostPort(ports[1])
		args := append([]string{
			"--name=kubetest",
			"--data-dir=" + filepath.Join(c.Dir, "etcd-data"),
			"--listen-client-urls=" + client,
			"--advertise-client-urls=" + client,
			"--listen-peer-urls=" + peer,
			"--initial-advertise-peer-urls=" + peer,
			"--initial-cluster=kubetest=" + peer,
			"--initial-cluster-state=new",
			"--initial-cluster-token=kubetest",
			"--unsafe-no-fsync=true", // throw-away data: skip fsync, much faster
			"--log-level=warn",
		}, c.opts.EtcdArgs...)
		p, err := startProc("etcd", bin, args, c.EtcdLog)
		if err != nil {
			return err
		}
		c.etcd = p
		c.EtcdURL = client
		err = c.waitEtcd(ctx)
		if err == nil {
			return nil
		}
		lastErr = err
		p.stop(5 * time.Second)
		if !strings.Contains(p.logTail(4000), errAddrInUse.Error()) {
			return err
		}
		_ = os.RemoveAll(filepath.Join(c.Dir, "etcd-data"))
		c.opts.logf("kubetest: etcd port taken, retrying with new ports")
	}
	return lastErr
}

func (c *Cluster) waitEtcd(ctx context.Context) error {
	deadline := time.Now().Add(c.opts.ReadyTimeout)
	hc := &http.Client{Timeout: 2 * time.Second}
	for {
		if c.etcd.exited() {
			return c.etcd.exitError()
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.EtcdURL+"/health", nil)
		if resp, err := hc.Do(req); err == nil {
			body := readAll(resp)
			if resp.StatusCode == http.StatusOK && strings.Contains(string(body), `"health":"true"`) {
				return nil
			}
		}
		if err := pollWait(ctx, deadline, 50*time.Millisecond); err != nil {
			return fmt.Errorf("kubetest: etcd not healthy: %w; end of %s:\n%s", err, c.EtcdLog, c.etcd.logTail(4000))
		}
	}
}

// pollWait sleeps one poll interval, or fails when ctx ends or the
// deadline passed.
func pollWait(ctx context.Context, deadline time.Time, every time.Duration) error {
	if time.Now().After(deadline) {
		return errors.New("deadline exceeded")
	}
	t := time.NewTimer(every)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// newAPIServer starts a kube-apiserver on a free port with the given etcd
// prefix and waits until it is ready, retrying with a new port if the
// chosen one was taken in the meantime.
func (c *Cluster) newAPIServer(ctx context.Context, creds Credentials, prefix, logName string, extra []string) (*APIServer, error) {
	tlsCfg, err := tlsConfig(creds.CAFile)
	if err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		ports, err := freePorts(1)
		if err != nil {
			return nil, err
		}
		a := &APIServer{
			Credentials: creds,
			Host:        "127.0.0.1",
			Port:        ports[0],
			URL:         "https://" + hostPort(ports[0]),
			EtcdPrefix:  prefix,
			LogFile:     filepath.Join(c.Dir, logName),
			cluster:     c,
			client:      &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg.Clone(), ForceAttemptHTTP2: true}},
			tlsConfig:   tlsCfg,
		}
		a.args = append(append([]string{
			"--secure-port=" + strconv.Itoa(a.Port),
			"--etcd-prefix=" + prefix,
			"--cert-dir=" + filepath.Join(c.Dir, "cert-dir-"+strings.TrimPrefix(prefix, "/")),
		}, c.baseArg...), extra...)
		lastErr = a.StartAPIServer(ctx)
		if lastErr == nil {
			c.mu.Lock()
			c.servers = append(c.servers, a)
			c.mu.Unlock()
			return a, nil
		}
		a.StopAPIServer()
		a.mu.Lock()
		p := a.proc
		a.mu.Unlock()
		if p == nil || !strings.Contains(p.logTail(8000), errAddrInUse.Error()) {
			return nil, lastErr
		}
		c.opts.logf("kubetest: apiserver port taken, retrying with a new port")
	}
	return nil, lastErr
}

// StartSecondAPIServer starts another kube-apiserver on its own port that
// shares this cluster's etcd under a different --etcd-prefix, so it serves
// an independent cluster (own namespaces, Endpoints, RBAC) with the same
// CA and tokens; rbac.yaml is applied to it too. extraArgs are appended to
// its flags. Cluster.Stop stops it; StopAPIServer/StartAPIServer work on it.
func (c *Cluster) StartSecondAPIServer(ctx context.Context, extraArgs ...string) (*APIServer, error) {
	c.mu.Lock()
	n := len(c.servers) + 1
	c.mu.Unlock()
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	rbac, err := os.ReadFile(filepath.Join(root, "testdata", "kube", "rbac.yaml"))
	if err != nil {
		return nil, err
	}
	extra := append(append([]string{}, c.opts.APIServerArgs...), extraArgs...)
	a, err := c.newAPIServer(ctx, c.Credentials, fmt.Sprintf("/kubetest-cluster-%d", n),
		fmt.Sprintf("kube-apiserver-%d.log", n), extra)
	if err != nil {
		return nil, err
	}
	if err := a.applyRBAC(ctx, rbac); err != nil {
		a.StopAPIServer()
		return nil, err
	}
	return a, nil
}

// StartAPIServer (re)starts this apiserver with the same port, flags and
// data, and waits for /readyz. It is a no-op while the apiserver runs.
func (a *APIServer) StartAPIServer(ctx context.Context) error {
	if a.cluster == nil {
		return errors.New("kubetest: StartAPIServer on an apiserver this process did not start (Connect)")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.proc != nil && !a.proc.exited() {
		return nil
	}
	p, err := startProc("kube-apiserver "+a.URL, a.cluster.bin, a.args, a.LogFile)
	if err != nil {
		return err
	}
	a.proc = p
	start := time.Now()
	if err := a.waitReady(ctx, p); err != nil {
		return err
	}
	a.cluster.opts.logf("kubetest: kube-apiserver %s ready (%v)", a.URL, time.Since(start).Round(time.Millisecond))
	return nil
}

// StopAPIServer stops this apiserver (SIGTERM, SIGKILL after 20 s). Its
// port stays reserved for StartAPIServer only by convention: nothing else
// in the cluster takes it.
func (a *APIServer) StopAPIServer() {
	a.mu.Lock()
	p := a.proc
	a.mu.Unlock()
	if p != nil && !p.exited() {
		start := time.Now()
		p.stop(20 * time.Second)
		a.cluster.opts.logf("kubetest: kube-apiserver %s stopped (%v)", a.URL, time.Since(start).Round(time.Millisecond))
	}
}

// Running reports whether the apiserver process is alive.
func (a *APIServer) Running() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.proc != nil && !a.proc.exited()
}

func (a *APIServer) waitReady(ctx context.Context, p *proc) error {
	deadline := time.Now().Add(a.cluster.opts.ReadyTimeout)
	var last string
	for {
		if p.exited() {
			return p.exitError()
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		body, code, err := a.Do(rctx, http.MethodGet, "/readyz", nil)
		cancel()
		if err == nil && code == http.StatusOK {
			return nil
		}
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("%d %s", code, body)
		}
		if err := pollWait(ctx, deadline, 100*time.Millisecond); err != nil {
			return fmt.Errorf("kubetest: kube-apiserver %s not ready: %w (last /readyz: %s); end of %s:\n%s",
				a.URL, err, last, a.LogFile, p.logTail(6000))
		}
	}
}

// Stop stops every apiserver, then etcd (an apiserver whose etcd is gone
// can hang on SIGTERM), SIGKILLing what does not exit in time, and removes
// the cluster folder unless KeepDir. Safe to call more than once.
func (c *Cluster) Stop() {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return
	}
	c.stopped = true
	servers := append([]*APIServer(nil), c.servers...)
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, a := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.StopAPIServer()
		}()
	}
	wg.Wait()
	if c.etcd != nil {
		start := time.Now()
		_ = c.etcd.signal(syscall.SIGCONT) // a paused etcd (PauseEtcd) would ignore SIGTERM
		c.etcd.stop(10 * time.Second)
		c.opts.logf("kubetest: etcd stopped (%v)", time.Since(start).Round(time.Millisecond))
	}
	if c.opts.KeepDir {
		_ = os.Remove(filepath.Join(c.Dir, ownerFile)) // not stale: kept on purpose
		c.opts.logf("kubetest: kept %s", c.Dir)
		return
	}
	_ = os.RemoveAll(c.Dir)
}

// PID is the process id of this kube-apiserver, 0 when it is not running
// (for benchmarks that read its CPU time and memory from /proc).
func (a *APIServer) PID() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.proc.pid()
}

// EtcdPID is the process id of the cluster's etcd, 0 when it is not running.
func (c *Cluster) EtcdPID() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.etcd.pid()
}
