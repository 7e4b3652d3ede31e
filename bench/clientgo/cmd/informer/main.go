// Command informer is the client-go side of bench/compare.sh: a shared
// informer on Endpoints or EndpointSlices against -url, with the event
// handler a proxy built on client-go would have (nodes per
// "namespace/name:port", sorted by host then port, weight 50, in a map
// under a mutex; EndpointSlices merged per service). It prints "ready" on
// stdout once the informer has synced (polled every millisecond), and
// "sentinel" once the handler has stored the sentinel service; it runs
// until SIGINT or SIGTERM.
//
// client-go runs with its defaults (JSON; the streaming list,
// WatchListClient, is on by default in v0.37 and the replay serves it).
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
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
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

	sentinel string // "namespace/name"
	seen     sync.Once
}

func portName(name *string, port int32) string {
	if name != nil && *name != "" {
		return *name
	}
	return strconv.Itoa(int(port))
}

func (p *proxy) found(ns, name string) {
	if ns+"/"+name == p.sentinel {
		p.seen.Do(func() { fmt.Println("sentinel") })
	}
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
	if cur != nil {
		p.found(cur.Namespace, cur.Name)
	}
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
	if !deleted {
		p.found(obj.Namespace, obj.Labels[discoveryv1.LabelServiceName])
	}
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
	flag.Parse()
	cs, err := kubernetes.NewForConfig(&rest.Config{Host: *url, BearerToken: "bench"})
	if err != nil {
		fmt.Fprintln(os.Stderr, "informer:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	p := &proxy{nodes: map[string][]node{}, slices: map[string]map[string]map[string][]node{}, sentinel: *sentinel}
	factory := informers.NewSharedInformerFactory(cs, 0)
	var inf cache.SharedIndexInformer
	var h cache.ResourceEventHandlerFuncs
	switch *resource {
	case "endpoints":
		inf = factory.Core().V1().Endpoints().Informer()
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
		inf = factory.Discovery().V1().EndpointSlices().Informer()
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
	if _, err := inf.AddEventHandler(h); err != nil {
		fmt.Fprintln(os.Stderr, "informer:", err)
		os.Exit(1)
	}
	factory.Start(ctx.Done())
	// cache.WaitForCacheSync polls every 100 ms: poll every 1 ms instead,
	// as benchrun polls kdisc's table.
	for !inf.HasSynced() {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Millisecond):
		}
	}
	fmt.Println("ready")
	<-ctx.Done()
	factory.Shutdown()
}
