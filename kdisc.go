// Package kdisc is Kubernetes service discovery for proxies and gateways:
// the Go face of what Apache APISIX's Kubernetes discovery module does.
//
// Start list-watches the Endpoints (or EndpointSlices) of every configured
// cluster in-process and keeps each cluster's services in a fixed-size
// table; Attach opens, read-only, the tables that a `kdisc run` process
// keeps in shared memory. Either way, Nodes answers "namespace/name:port"
// (or "id/namespace/name:port" with several clusters) by copying the nodes
// into the caller's buffer: no lock, no allocation. Lookup says why nothing
// was found (not ready, unknown, empty), Age how stale the tables are, and
// OnChange which services changed.
package kdisc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kdisc/kdisc/apiserver"
	"github.com/kdisc/kdisc/config"
	"github.com/kdisc/kdisc/dump"
	"github.com/kdisc/kdisc/listwatch"
	"github.com/kdisc/kdisc/shm"
)

// Node is one address of a service: host (an IP address, or a DNS name for
// FQDN EndpointSlices), port and weight.
type Node = shm.Node

// Answer is what Lookup found: Found, or one of three kinds of nothing
// that a proxy answers differently.
//
//	Found     serve the nodes (the last known ones, even while not ready)
//	NotReady  not authoritative yet (first list not done, no live kdisc run,
//	          or closed): retry, or answer 503
//	Unknown   no such service or port: answer 404
//	Empty     the service exists but has no address for that port: 503
//
// String gives the words the CLI and the control API use: "found",
// "not_ready", "unknown", "empty".
type Answer = shm.Answer

// The answers of Lookup.
const (
	Found    = shm.Found
	NotReady = shm.NotReady
	Unknown  = shm.Unknown
	Empty    = shm.Empty
)

// Discovery serves the nodes of one or more clusters. It is safe for
// concurrent use.
type Discovery struct {
	cfg      *config.Config
	clusters []*cluster // in configuration order
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// cluster is one configured cluster: its table and, when this process
// fills it, the writer and the watcher.
type cluster struct {
	id      string
	reader  *shm.Reader
	writer  *shm.Writer        // nil when attached
	watcher *listwatch.Watcher // nil when attached
	client  *apiserver.Client  // nil when attached
	detail  bool               // node_detail: the table keeps node detail
}

// Option tunes Start.
type Option func(*options)

type options struct {
	shmDir    string
	logger    *slog.Logger
	trustUIDs []int
}

// WithShmDir keeps the tables as files under dir, where other processes
// can Attach to them (this is what `kdisc run` does). Without it the
// tables live in anonymous memory, private to this process.
func WithShmDir(dir string) Option { return func(o *options) { o.shmDir = dir } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithTrustedUIDs lets Attach read tables owned by these users, besides
// the caller's own user and root (a proxy's workers often run as another
// user than kdisc run). A table owned by anyone else, writable by group or
// others, or behind a symlink is refused: whoever can replace it could
// redirect the proxy's traffic. The CLI reads them from the environment
// variable KDISC_TRUSTED_UIDS (comma-separated).
func WithTrustedUIDs(uids ...int) Option {
	return func(o *options) { o.trustUIDs = append(o.trustUIDs, uids...) }
}

// DefaultShmDir is where `kdisc run` keeps its tables when not told:
// /dev/shm/kdisc where /dev/shm exists, else kdisc under the temp dir.
func DefaultShmDir() string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		return "/dev/shm/kdisc"
	}
	return filepath.Join(os.TempDir(), "kdisc")
}

// Start creates every cluster's table and starts list-watching in the
// background until ctx ends or Close is called. It fails only on what
// retrying cannot fix (a table it cannot create, an unreadable CA file);
// an unreachable or refusing apiserver is retried with backoff and shows
// in Ready and NotReady.
func Start(ctx context.Context, cfg *config.Config, opts ...Option) (*Discovery, error) {
	o := options{logger: slog.Default()}
	for _, opt := range opts {
		opt(&o)
	}
	d := &Discovery{cfg: cfg}
	for i := range cfg.Clusters {
		c, err := startCluster(&cfg.Clusters[i], o)
		if err != nil {
			d.Close()
			return nil, err
		}
		d.clusters = append(d.clusters, c)
	}
	ctx, d.cancel = context.WithCancel(ctx)
	for _, c := range d.clusters {
		d.wg.Go(func() { c.watcher.Run(ctx) })
	}
	return d, nil
}

func startCluster(cc *config.Cluster, o options) (*cluster, error) {
	log := o.logger
	if cc.ID != "" {
		log = log.With("cluster", cc.ID)
	}
	if keys := cc.IgnoredForEndpoints(); keys != nil {
		log.Warn("keys for EndpointSlices only are ignored: this cluster watches Endpoints (watch_endpoint_slices: false)",
			"keys", strings.Join(keys, ", "), "path", cc.KeyPath())
	}
	ao := apiserver.Options{
		Schema:             cc.Service.Schema,
		Host:               cc.Host,
		Port:               cc.Port,
		Token:              cc.Token,
		TokenFile:          cc.TokenFile,
		CAFile:             cc.CAFile,
		InsecureSkipVerify: !cc.SSLVerify,
		CertFile:           cc.CertFile,
		KeyFile:            cc.KeyFile,
		Logger:             log,
	}
	if k := cc.Kubeconfig; k != nil {
		// As kubectl: no CA in the kubeconfig means the system roots.
		ao.NoInClusterCA = true
		ao.PathPrefix, ao.TLSServerName = k.PathPrefix, k.TLSServerName
		ao.CAData, ao.CertData, ao.KeyData = k.CAData, k.CertData, k.KeyData
		ao.Exec = k.Exec // run at the first request, never before
	}
	client, err := apiserver.New(ao)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cc.KeyPath(), err)
	}
	path := ""
	if o.shmDir != "" {
		path = filepath.Join(o.shmDir, cc.TableName())
	}
	w, err := shm.Create(path, cc.SharedSizeBytes)
	if err != nil {
		return nil, fmt.Errorf("%s: table: %w", cc.KeyPath(), err)
	}
	c := &cluster{id: cc.ID, writer: w, reader: w.Reader(), client: client, detail: cc.NodeDetail}
	c.watcher = listwatch.New(listwatch.Options{
		Client:         client,
		Store:          w, // a full table's error names shared_size
		EndpointSlices: cc.WatchEndpointSlices,
		JSON:           cc.ContentType == config.ContentTypeJSON,
		Namespaces:     cc.Namespaces,
		LabelSelector:  cc.Labels.String(),
		Weight:         uint32(cc.DefaultWeight),
		Logger:         log,

		NoTerminatingFallback: !cc.TerminatingFallback,
		Zone:                  cc.ZoneName,
		Node:                  cc.NodeName,
		NodeDetail:            cc.NodeDetail,
	})
	return c, nil
}

// Attach opens, read-only, the tables that a `kdisc run -config` with the
// same configuration keeps under shmDir. A table that does not exist yet
// (kdisc run has not started) is found once it is created; until then
// Lookup answers NotReady. It fails on a table it must not trust (see
// WithTrustedUIDs) or cannot read. Options other than WithTrustedUIDs
// are ignored.
func Attach(shmDir string, cfg *config.Config, opts ...Option) (*Discovery, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	d := &Discovery{cfg: cfg}
	for i := range cfg.Clusters {
		cc := &cfg.Clusters[i]
		r, err := shm.Open(filepath.Join(shmDir, cc.TableName()), shm.AllowMissing(), shm.TrustUIDs(o.trustUIDs...))
		if err != nil {
			d.Close()
			return nil, err
		}
		d.clusters = append(d.clusters, &cluster{id: cc.ID, reader: r, detail: cc.NodeDetail})
	}
	return d, nil
}

// Nodes appends the nodes of service to buf and returns it, with ok false
// when the service or port is unknown, has no ready address, or has not
// been listed yet (Lookup tells these apart). service is
// "namespace/name:port" in single mode and "id/namespace/name:port" in
// multi mode; port is the port's name, or its number in decimal when it
// has no name. Nodes does not allocate when buf has room for the result,
// and the nodes it returns never alias the table. It is safe during and
// after Close (it then finds nothing).
func (d *Discovery) Nodes(buf []Node, service string) ([]Node, bool) {
	buf, a := d.Lookup(buf, service)
	return buf, a == Found
}

// Lookup is Nodes with the reason when nothing is found: NotReady,
// Unknown or Empty (see Answer). It does not allocate and makes no system
// call; readiness comes from the table header. An unknown cluster id in
// multi mode is Unknown.
func (d *Discovery) Lookup(buf []Node, service string) ([]Node, Answer) {
	c, service := d.route(service)
	if c == nil {
		return buf, Unknown
	}
	return c.reader.Find(buf, service)
}

// route finds the cluster of a query and the query within it: in multi
// mode "id/rest" names cluster id (nil when there is none) and rest.
func (d *Discovery) route(service string) (*cluster, string) {
	if !d.cfg.Multi {
		return d.clusters[0], service
	}
	id, rest, found := strings.Cut(service, "/")
	if !found {
		return nil, ""
	}
	return d.cluster(id), rest
}

// NodeDetail is where one node of a service runs (node_detail: true):
// host and port, and the nodeName, zone and targetRef the Endpoints or
// EndpointSlice gives, empty when unknown.
type NodeDetail = dump.NodeDetail

// TargetRef is the object behind an address, usually a Pod.
type TargetRef = dump.TargetRef

// Detail returns where the nodes of service run: every node of every port
// (each host and port once, in the order Nodes gives them), with its
// nodeName, zone (EndpointSlices) and targetRef. service is
// "namespace/name" ("id/namespace/name" in multi mode); a ":port" suffix
// is ignored. ok is false when the cluster does not keep node detail
// (node_detail: false, the default) or has none for service. It reads and
// parses a copy, so it allocates: call it for diagnostics, not per
// request.
func (d *Discovery) Detail(service string) ([]NodeDetail, bool) {
	c, service := d.route(service)
	if c == nil || !c.detail {
		return nil, false
	}
	if i := strings.LastIndexByte(service, ':'); i >= 0 {
		service = service[:i]
	}
	b, ok := c.reader.Detail(nil, service)
	if !ok {
		return nil, false
	}
	nodes, err := dump.ParseDetail(b)
	return nodes, err == nil
}

// Age returns how long ago the stalest cluster's table last agreed with its
// apiserver (its last successful list, or watch event or bookmark), and
// false while some table never has. A proxy decides from it how stale is
// too stale; /metrics shows it per cluster as kdisc_last_sync_age_seconds.
func (d *Discovery) Age() (time.Duration, bool) {
	var oldest time.Duration
	for _, c := range d.clusters {
		age, ok := c.reader.Age()
		if !ok {
			return 0, false
		}
		oldest = max(oldest, age)
	}
	return oldest, true
}

func (d *Discovery) cluster(id string) *cluster {
	for _, c := range d.clusters {
		if c.id == id {
			return c
		}
	}
	return nil
}

// Ready reports whether every cluster has applied its first full list
// (for Attach: whether the writing process says so).
func (d *Discovery) Ready() bool { return len(d.NotReady()) == 0 }

// NotReady lists the clusters that are not ready yet and why.
func (d *Discovery) NotReady() []dump.NotReady {
	var out []dump.NotReady
	for _, c := range d.clusters {
		switch {
		case c.watcher != nil:
			if st := c.watcher.Status(); !st.Ready {
				reason := st.Error
				if reason == "" {
					reason = "first list not finished"
				}
				out = append(out, dump.NotReady{ID: c.id, Reason: reason, Class: readyClass(st.ErrorClass, c.client.LastFailure())})
			}
		case !c.reader.Ready():
			out = append(out, dump.NotReady{ID: c.id, Reason: "no running kdisc process has finished a full list into this table", Class: dump.ClassNotRunning})
		}
	}
	return out
}

// readyClass is the fixed word /readyz on the probe listener shows for a
// cluster not ready: the list-watch's error class, with "transport" split
// by what the apiserver client saw (a failure after an answer, such as a
// stream cut, stays "transport"). The classes and failures are spelled as
// their words in dump.Classes; anything else is "unknown". A probe during
// a retry may see the class of the attempt before.
func readyClass(class listwatch.ErrorClass, failure apiserver.Failure) string {
	if class == listwatch.ClassNone {
		return dump.ClassStarting
	}
	word := string(class)
	if class == listwatch.ClassTransport && slices.Contains(dump.Classes, string(failure)) {
		word = string(failure)
	}
	if !slices.Contains(dump.Classes, word) {
		return dump.ClassUnknown
	}
	return word
}

// Dump returns every service of every table, sorted, and the effective
// configuration with tokens redacted.
func (d *Discovery) Dump() dump.Dump {
	out := dump.Dump{Config: d.cfg.Effective()}
	for _, c := range d.clusters {
		t := dump.Table(c.id, c.reader)
		if c.detail {
			t.AddDetail(c.reader)
		}
		out.Endpoints = append(out.Endpoints, t)
	}
	return out
}

// Close stops list-watching and releases the tables. Lookups running
// meanwhile or made afterwards are safe and find nothing (NotReady). Files under the shm dir stay, so that
// attached readers keep the last known nodes and a restarted writer picks
// them up.
func (d *Discovery) Close() error {
	if d.cancel != nil {
		d.cancel()
	}
	d.wg.Wait()
	var errs []error
	for _, c := range d.clusters {
		if c.writer != nil {
			c.client.CloseIdleConnections()
			errs = append(errs, c.writer.Close())
		}
		errs = append(errs, c.reader.Close())
	}
	return errors.Join(errs...)
}
