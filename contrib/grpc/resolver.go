// Package kdiscgrpc is a grpc-go name resolver that reads kdisc's tables:
// gRPC clients inside Kubernetes follow a Service's endpoints within
// milliseconds of a change, with weights, and without a watch or an RBAC
// grant of their own.
//
// # Where the tables come from
//
// A Builder reads through a *kdisc.Discovery that the caller opens and
// closes: usually kdisc.Attach, a read-only view of the tables that a
// `kdisc run` beside the client (a sidecar or a DaemonSet sharing
// /dev/shm) keeps, or kdisc.Start, which list-watches in-process. The
// Builder neither opens nor closes it, so one Discovery serves every
// channel and every other lookup of the process:
//
//	d, err := kdisc.Attach(kdisc.DefaultShmDir(), cfg) // cfg: the config `kdisc run` reads
//	...
//	conn, err := grpc.NewClient("kdisc:///default/echo:grpc",
//		grpc.WithResolvers(kdiscgrpc.NewBuilder(d)),
//		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`),
//		grpc.WithTransportCredentials(insecure.NewCredentials()))
//
// # Targets
//
// kdisc:///namespace/name:port with one cluster, and
// kdisc:///id/namespace/name:port with several (the id of the cluster in
// the configuration). port is the Service port's name, or its number when
// it has none, exactly as kdisc.Discovery.Lookup takes it. The channel's
// default authority is name.namespace.svc (with ":port" when port is a
// number), the name a Service's serving certificate usually carries;
// grpc.WithAuthority overrides it.
//
// # What each answer does
//
//   - kdisc.Found: UpdateState with one endpoint per node, "host:port".
//   - kdisc.Empty (the Service exists but has no ready address): UpdateState
//     with no endpoint, so RPCs fail fast with codes.Unavailable instead of
//     waiting.
//   - kdisc.Unknown (no such Service or port): ReportError naming the
//     service. As for any resolver error, a channel that already had
//     endpoints keeps them, and one that had none fails RPCs with
//     codes.Unavailable (pick_first's message quotes the error; round_robin
//     says "no children to pick from").
//   - kdisc.NotReady (no `kdisc run` has finished its first list into the
//     table yet): no update. The channel keeps its last state, and a channel
//     with none yet waits, so RPCs started before kdisc is ready wait for it
//     (until their deadline) rather than fail. A table that `kdisc run`
//     has not created yet is found within half a second of its creation.
//
// A resolver follows changes through Discovery.OnChange (one subscription
// per Builder, shared by its channels): addresses follow a change within
// OnChange's poll, 10 ms, plus the time to connect to a new address. It
// looks again when gRPC asks it to (ResolveNow), and every 10 ms while the
// table is not ready.
//
// # Weights
//
// Each endpoint carries its node's weight (a uint32, the Endpoints'
// default_weight in kdisc's configuration) in its Attributes under
// WeightKey, and so does each address of State.Addresses in its
// BalancerAttributes; Weight reads it. round_robin and pick_first ignore
// weights; a weighted balancer of your own reads them with Weight.
package kdiscgrpc

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kdisc/kdisc"
	"google.golang.org/grpc/attributes"
	"google.golang.org/grpc/resolver"
)

// Scheme is the target scheme a Builder resolves: kdisc:///ns/name:port.
const Scheme = "kdisc"

// attributeKey keeps this package's attribute keys apart from any other
// package's.
type attributeKey string

// WeightKey is the attribute key of an endpoint's weight, a uint32.
const WeightKey = attributeKey("kdisc.weight")

// Weight returns the weight kept under WeightKey in a (an endpoint's
// Attributes, or an address's BalancerAttributes), and false when there is
// none.
func Weight(a *attributes.Attributes) (uint32, bool) {
	w, ok := a.Value(WeightKey).(uint32)
	return w, ok
}

// notReadyPoll is how often a resolver looks again while the table is not
// ready: becoming ready is not a change OnChange reports.
const notReadyPoll = 10 * time.Millisecond

// Builder builds resolvers for Scheme that read d. Pass it to
// grpc.WithResolvers (or, once, before any channel is made, to
// resolver.Register, for every channel of the process). It is safe for
// concurrent use.
type Builder struct {
	d *kdisc.Discovery

	mu       sync.Mutex
	watching map[string][]*kdiscResolver // by the service OnChange names: "ns/name" or "id/ns/name"
	stop     func()                      // ends the OnChange subscription; nil without resolvers

	looked func(service string, answer kdisc.Answer) // tests: after each lookup
}

var (
	_ resolver.Builder            = (*Builder)(nil)
	_ resolver.AuthorityOverrider = (*Builder)(nil)
)

// NewBuilder returns a Builder reading d. d stays the caller's: close it
// after the channels that use it.
func NewBuilder(d *kdisc.Discovery) *Builder {
	return &Builder{d: d, watching: map[string][]*kdiscResolver{}}
}

// Scheme returns "kdisc".
func (b *Builder) Scheme() string { return Scheme }

// OverrideAuthority returns name.namespace.svc for a target
// kdisc:///[id/]namespace/name:port, with ":port" when port is a number.
func (b *Builder) OverrideAuthority(target resolver.Target) string {
	t, err := parseTarget(target)
	if err != nil {
		return "kdisc.invalid" // Build refuses the target
	}
	host := t.name + "." + t.namespace + ".svc"
	if _, err := strconv.ParseUint(t.port, 10, 16); err == nil {
		return net.JoinHostPort(host, t.port)
	}
	return host
}

// Build starts a resolver for target. It fails only on a malformed
// target; a Service that does not exist (yet) is reported to the channel.
func (b *Builder) Build(target resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	t, err := parseTarget(target)
	if err != nil {
		return nil, err
	}
	r := &kdiscResolver{
		b:       b,
		service: t.service,
		changes: t.changes,
		cc:      cc,
		kick:    make(chan struct{}, 1),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	b.watch(r) // before the first lookup, so that no change falls between
	go r.run()
	return r, nil
}

// target is a parsed kdisc:///[id/]namespace/name:port.
type target struct {
	service               string // what Lookup takes: "[id/]namespace/name:port"
	changes               string // what OnChange names: "[id/]namespace/name"
	namespace, name, port string
}

func parseTarget(t resolver.Target) (target, error) {
	s := t.Endpoint()
	bad := func(why string) (target, error) {
		return target{}, fmt.Errorf("kdisc: target %q: %s; want kdisc:///namespace/name:port, or kdisc:///id/namespace/name:port with several clusters", t.String(), why)
	}
	if t.URL.Host != "" {
		return bad("an authority (kdisc://HOST/) is not supported")
	}
	i := strings.LastIndexByte(s, ':')
	if i < 0 || i == len(s)-1 {
		return bad("no port")
	}
	parts := strings.Split(s[:i], "/")
	if len(parts) < 2 || len(parts) > 3 || slices.Contains(parts, "") {
		return bad("not [id/]namespace/name")
	}
	n := len(parts)
	return target{service: s, changes: s[:i], namespace: parts[n-2], name: parts[n-1], port: s[i+1:]}, nil
}

// watch subscribes r to the changes of its service, starting the
// Builder's OnChange subscription with its first resolver.
func (b *Builder) watch(r *kdiscResolver) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.watching[r.changes] = append(b.watching[r.changes], r)
	if b.stop == nil {
		b.stop = b.d.OnChange(b.changed)
	}
}

// unwatch undoes watch, ending the subscription with the last resolver.
func (b *Builder) unwatch(r *kdiscResolver) {
	b.mu.Lock()
	rs := slices.DeleteFunc(b.watching[r.changes], func(x *kdiscResolver) bool { return x == r })
	if len(rs) == 0 {
		delete(b.watching, r.changes)
	} else {
		b.watching[r.changes] = rs
	}
	var stop func()
	if len(b.watching) == 0 {
		stop, b.stop = b.stop, nil
	}
	b.mu.Unlock()
	if stop != nil {
		stop() // waits for changed, which takes b.mu: not under it
	}
}

// changed runs on OnChange's goroutine: it wakes the resolvers of service
// without waiting for them.
func (b *Builder) changed(service string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, r := range b.watching[service] {
		r.ResolveNow(resolver.ResolveNowOptions{})
	}
}

// kdiscResolver resolves one target. Its goroutine does every lookup and
// every call to the channel, so they never run concurrently.
type kdiscResolver struct {
	b       *Builder
	service string
	changes string
	cc      resolver.ClientConn

	kick chan struct{} // a look is due; holds one
	quit chan struct{}
	done chan struct{}

	// Owned by run.
	buf    []kdisc.Node
	told   bool         // the channel has heard from this resolver
	answer kdisc.Answer // what it heard last: Found, Empty or Unknown
	nodes  []kdisc.Node // with Found: the nodes it heard
}

// ResolveNow asks for a look at the table; it never blocks.
func (r *kdiscResolver) ResolveNow(resolver.ResolveNowOptions) {
	select {
	case r.kick <- struct{}{}:
	default: // a look is already due
	}
}

// Close stops the resolver and waits until it no longer calls the channel.
func (r *kdiscResolver) Close() {
	r.b.unwatch(r)
	close(r.quit)
	<-r.done
}

func (r *kdiscResolver) run() {
	defer close(r.done)
	for {
		var retry <-chan time.Time
		if !r.resolve() {
			retry = time.After(notReadyPoll)
		}
		select {
		case <-r.quit:
			return
		case <-r.kick:
		case <-retry:
		}
	}
}

// resolve looks the service up and tells the channel what changed since
// it last told it. It returns false while the table is not ready.
func (r *kdiscResolver) resolve() bool {
	nodes, answer := r.b.d.Lookup(r.buf[:0], r.service)
	r.buf = nodes[:0]
	if r.b.looked != nil {
		r.b.looked(r.service, answer)
	}
	switch {
	case answer == kdisc.NotReady:
		return false // keep the last state
	case r.told && answer == r.answer && slices.Equal(nodes, r.nodes):
		return true // another port, or the same nodes again
	}
	r.told, r.answer, r.nodes = true, answer, append(r.nodes[:0], nodes...)
	if answer == kdisc.Unknown {
		r.cc.ReportError(fmt.Errorf("kdisc: service %s is unknown (no such Service or port)", r.service))
		return true
	}
	// Found or Empty. An error (none, or none a balancer accepts) needs no
	// retry: the next change brings the next state.
	_ = r.cc.UpdateState(stateOf(nodes))
	return true
}

// stateOf is the channel's state for nodes: each node is an endpoint of
// one address, its weight under WeightKey. Addresses repeat them for
// balancers that read only those.
func stateOf(nodes []kdisc.Node) resolver.State {
	st := resolver.State{
		Addresses: make([]resolver.Address, len(nodes)),
		Endpoints: make([]resolver.Endpoint, len(nodes)),
	}
	for i, n := range nodes {
		addr := net.JoinHostPort(n.Host(), strconv.Itoa(int(n.Port)))
		weight := attributes.New(WeightKey, n.Weight)
		st.Addresses[i] = resolver.Address{Addr: addr, BalancerAttributes: weight}
		st.Endpoints[i] = resolver.Endpoint{Addresses: []resolver.Address{{Addr: addr}}, Attributes: weight}
	}
	return st
}
