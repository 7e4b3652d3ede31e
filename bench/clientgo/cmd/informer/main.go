// Command informer is the client-go side of bench/compare.sh: a shared
// informer on Endpoints or EndpointSlices against -url, set up as a careful
// user (kube-proxy) sets one up. It prints "ready" on stdout once the
// informer has synced and "sentinel" once the sentinel service is in the
// informer's store, both polled every millisecond (as benchrun polls
// kdisc's table), and runs until SIGINT or SIGTERM.
//
//		informer -url URL [-resource endpoints|endpointslices] [-protobuf]
//		         [-qps -1] [-burst 0] [-handler trivial|nodes]
//
//	  - -protobuf: ContentType application/vnd.kubernetes.protobuf, as
//	    kube-proxy configures its client (its default); JSON without it.
//	  - -qps, -burst: client-side rate limit; -1 (the default) turns it off.
//	    kube-proxy's defaults are -qps 5 -burst 10. A streaming list is one
//	    request, so only a paginated list (KUBE_FEATURE_WatchListClient=false)
//	    can feel it: 10,000 objects are 20 pages of 500.
//	  - -handler trivial (the default): the event handler does nothing and
//	    the proxy reads objects through the lister, as kube-proxy's
//	    EndpointSliceConfig hands objects on; -handler nodes builds the
//	    nodes per "namespace/name:port" for every event (sorted by host then
//	    port, weight 50, in a map under a mutex; EndpointSlices merged per
//	    service), as a proxy that keeps its own table would.
//
// The streaming list (WatchListClient) is on by default in client-go v0.37
// and the replay serves it; KUBE_FEATURE_WatchListClient=false makes the
// informer LIST in pages of 500, then WATCH.
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

const weight = 50

type node struct {
	Host   string
	Port   int32
	Weight uint32
}

func sortNodes(ns []node) {
	slices.SortFunc(ns, func(a, b node) int { return cmp.Or(cmp.Compare(a.Host, b.Host), cmp.Compare(a.Port, b.Port)) })
}

// proxy holds what a proxy serves from.
type proxy struct {
	mu    sync.RWMutex
	nodes map[string][]node // "namespace/name:port"
	// EndpointSlices: the ports of each slice, per service, to merge.
	slices map[string]map[string]map[string][]node // service → slice → port → nodes

}

func portName(name *string, port int32) string {
	if name != nil && *name != "" {
		return *name
	}
	return strconv.Itoa(int(port))
}

func (p *proxy) endpoints(old, cur *corev1.Endpoints) {
	next := map[string][]node{}
	if cur != nil {
		for _, ss := range cur.Subsets {
			for _, port := range ss.Ports {
				key := cur.Namespace + "/" + cur.Name + ":" + portName(&port.Name, port.Port)
				for _, a := range ss.Addresses {
					next[key] = append(next[key], node{a.IP, port.Port, weight})
				}
			}
		}
		for _, ns := range next {
			sortNodes(ns)
		}
	}
	p.mu.Lock()
	if old != nil {
		for _, ss := range old.Subsets {
			for _, port := range ss.Ports {
				delete(p.nodes, old.Namespace+"/"+old.Name+":"+portName(&port.Name, port.Port))
			}
		}
	}
	for k, ns := range next {
		p.nodes[k] = ns
	}
	p.mu.Unlock()
}

func ready(e discoveryv1.Endpoint) bool {
	return e.Conditions.Ready == nil || *e.Conditions.Ready
}

// slice folds one EndpointSlice into its service (cur nil: deleted) and
// rebuilds that service's merged nodes per port, deduplicated and sorted.
func (p *proxy) slice(obj *discoveryv1.EndpointSlice, deleted bool) {
	svc := obj.Namespace + "/" + obj.Labels[discoveryv1.LabelServiceName]
	ports := map[string][]node{}
	if !deleted {
		for _, port := range obj.Ports {
			if port.Port == nil {
				continue
			}
			name := portName(port.Name, *port.Port)
			for _, e := range obj.Endpoints {
				if !ready(e) {
					continue
				}
				for _, a := range e.Addresses {
					ports[name] = append(ports[name], node{a, *port.Port, weight})
				}
			}
		}
	}
	p.mu.Lock()
	bySlice := p.slices[svc]
	if bySlice == nil {
		bySlice = map[string]map[string][]node{}
		p.slices[svc] = bySlice
	}
	for name := range mergedPorts(bySlice) {
		delete(p.nodes, svc+":"+name)
	}
	if deleted {
		delete(bySlice, obj.Name)
	} else {
		bySlice[obj.Name] = ports
	}
	for name, ns := range mergedPorts(bySlice) {
		p.nodes[svc+":"+name] = ns
	}
	if len(bySlice) == 0 {
		delete(p.slices, svc)
	}
	p.mu.Unlock()
}

func mergedPorts(bySlice map[string]map[string][]node) map[string][]node {
	out := map[string][]node{}
	for _, ports := range bySlice {
		for name, ns := range ports {
			out[name] = append(out[name], ns...)
		}
	}
	for name, ns := range out {
		sortNodes(ns)
		out[name] = slices.Compact(ns)
	}
	return out
}

func main() {
	url := flag.String("url", "", "apiserver URL, e.g. http://127.0.0.1:8080")
	resource := flag.String("resource", "endpoints", "endpoints or endpointslices")
	sentinel := flag.String("sentinel", "replay/sentinel", "namespace/name of the service that ends the replay")
	protobuf := flag.Bool("protobuf", false, "ask for application/vnd.kubernetes.protobuf, as kube-proxy does")
	qps := flag.Float64("qps", -1, "client-side requests per second; -1: no limit (kube-proxy: 5)")
	burst := flag.Int("burst", 0, "client-side burst (kube-proxy: 10)")
	handler := flag.String("handler", "trivial", "trivial (read through the lister) or nodes (build a table per event)")
	caFile := flag.String("ca", "", "CA file that signed the apiserver's certificate (https)")
	tokenFile := flag.String("token-file", "", "bearer token file (default: the token \"bench\")")
	flag.Parse()
	cfg := &rest.Config{Host: *url, BearerToken: "bench", QPS: float32(*qps), Burst: *burst}
	if *tokenFile != "" {
		cfg.BearerToken, cfg.BearerTokenFile = "", *tokenFile
	}
	cfg.CAFile = *caFile
	// Set either way: client-go v0.37's typed clients ask for protobuf
	// first when no ContentType is set (rest.Request.UseProtobufAsDefault).
	cfg.ContentType = "application/json"
	if *protobuf {
		cfg.ContentType = "application/vnd.kubernetes.protobuf"
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "informer:", err)
		os.Exit(1)
	}
	ns, name, _ := strings.Cut(*sentinel, "/")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	p := &proxy{nodes: map[string][]node{}, slices: map[string]map[string]map[string][]node{}}
	factory := informers.NewSharedInformerFactory(cs, 0)
	var inf cache.SharedIndexInformer
	var h cache.ResourceEventHandlerFuncs
	var found func() bool // whether the sentinel is in the store, read through the lister
	switch *resource {
	case "endpoints":
		e := factory.Core().V1().Endpoints()
		inf = e.Informer()
		found = func() bool { _, err := e.Lister().Endpoints(ns).Get(name); return err == nil }
		h = cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { p.endpoints(nil, obj.(*corev1.Endpoints)) },
			UpdateFunc: func(old, cur any) { p.endpoints(old.(*corev1.Endpoints), cur.(*corev1.Endpoints)) },
			DeleteFunc: func(obj any) {
				if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
					obj = t.Obj
				}
				p.endpoints(obj.(*corev1.Endpoints), nil)
			},
		}
	case "endpointslices":
		e := factory.Discovery().V1().EndpointSlices()
		inf = e.Informer()
		of := labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: name})
		found = func() bool { l, err := e.Lister().EndpointSlices(ns).List(of); return err == nil && len(l) > 0 }
		h = cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { p.slice(obj.(*discoveryv1.EndpointSlice), false) },
			UpdateFunc: func(_, cur any) { p.slice(cur.(*discoveryv1.EndpointSlice), false) },
			DeleteFunc: func(obj any) {
				if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
					obj = t.Obj
				}
				p.slice(obj.(*discoveryv1.EndpointSlice), true)
			},
		}
	default:
		fmt.Fprintln(os.Stderr, "informer: -resource must be endpoints or endpointslices")
		os.Exit(2)
	}
	switch *handler {
	case "trivial":
		h = cache.ResourceEventHandlerFuncs{} // kube-proxy registers a handler; this one does nothing
	case "nodes":
	default:
		fmt.Fprintln(os.Stderr, "informer: -handler must be trivial or nodes")
		os.Exit(2)
	}
	if _, err := inf.AddEventHandler(h); err != nil {
		fmt.Fprintln(os.Stderr, "informer:", err)
		os.Exit(1)
	}
	factory.Start(ctx.Done())
	// cache.WaitForCacheSync polls every 100 ms: poll every 1 ms instead,
	// as benchrun polls kdisc's table.
	if !poll(ctx, inf.HasSynced) {
		return
	}
	fmt.Println("ready")
	if !poll(ctx, found) {
		return
	}
	fmt.Println("sentinel")
	<-ctx.Done()
	factory.Shutdown()
}

// poll calls cond every millisecond until it holds (true) or ctx ends.
func poll(ctx context.Context, cond func() bool) bool {
	for !cond() {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(time.Millisecond):
		}
	}
	return true
}
