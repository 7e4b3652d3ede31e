package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kdisc/kdisc/dump"
	"github.com/kdisc/kdisc/internal/kubetest"
)

// node is one served node, as the dump's value strings carry it.
type node struct {
	Host   string `json:"host"`
	Port   int    `json:"port"`
	Weight int    `json:"weight"`
}

// services is a table's content: "ns/name" -> port key -> sorted nodes.
// Services with no node are absent (as in the dump).
type services map[string]map[string][]node

// apiServices lists the Endpoints (or EndpointSlices) of namespace ns on
// the apiserver, as admin, page by page on the namespaced path, and
// computes what the contract says kdisc must serve for them with weight w.
// It also returns how long the LIST took.
func apiServices(ctx context.Context, a *kubetest.APIServer, ns string, slices bool, w int) (services, time.Duration, error) {
	path := "/api/v1/namespaces/" + ns + "/endpoints"
	if slices {
		path = "/apis/discovery.k8s.io/v1/namespaces/" + ns + "/endpointslices"
	}
	start := time.Now()
	var items []json.RawMessage
	cont := ""
	for {
		q := url.Values{"limit": {"500"}}
		if cont != "" {
			q.Set("continue", cont)
		}
		b, code, err := a.Do(ctx, http.MethodGet, path+"?"+q.Encode(), nil)
		if err != nil {
			return nil, 0, err
		}
		if code != http.StatusOK {
			return nil, 0, fmt.Errorf("LIST %s: %d %s", path, code, b)
		}
		var page struct {
			Metadata struct {
				Continue string `json:"continue"`
			} `json:"metadata"`
			Items []json.RawMessage `json:"items"`
		}
		if err := json.Unmarshal(b, &page); err != nil {
			return nil, 0, err
		}
		items = append(items, page.Items...)
		if cont = page.Metadata.Continue; cont == "" {
			break
		}
	}
	took := time.Since(start)
	out := services{}
	add := func(svc, port string, n node) {
		ports := out[svc]
		if ports == nil {
			ports = map[string][]node{}
			out[svc] = ports
		}
		for _, have := range ports[port] {
			if have == n {
				return
			}
		}
		ports[port] = append(ports[port], n)
	}
	portKey := func(name string, port int) string {
		if name == "" {
			return strconv.Itoa(port)
		}
		return name
	}
	for _, raw := range items {
		if !slices {
			var e struct {
				Metadata struct{ Name string } `json:"metadata"`
				Subsets  []struct {
					Addresses []struct{ IP string } `json:"addresses"`
					Ports     []struct {
						Name string
						Port int
					} `json:"ports"`
				} `json:"subsets"`
			}
			if err := json.Unmarshal(raw, &e); err != nil {
				return nil, 0, err
			}
			for _, s := range e.Subsets {
				for _, p := range s.Ports {
					for _, ad := range s.Addresses {
						add(ns+"/"+e.Metadata.Name, portKey(p.Name, p.Port), node{ad.IP, p.Port, w})
					}
				}
			}
			continue
		}
		var s struct {
			Metadata struct {
				Labels map[string]string `json:"labels"`
			} `json:"metadata"`
			Endpoints []struct {
				Addresses  []string `json:"addresses"`
				Conditions struct {
					Ready, Serving, Terminating *bool
				} `json:"conditions"`
			} `json:"endpoints"`
			Ports []struct {
				Name *string
				Port *int
			} `json:"ports"`
		}
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, 0, err
		}
		svc := s.Metadata.Labels["kubernetes.io/service-name"]
		if svc == "" {
			continue
		}
		for _, p := range s.Ports {
			if p.Port == nil {
				continue
			}
			name := ""
			if p.Name != nil {
				name = *p.Name
			}
			for _, ep := range s.Endpoints {
				c := ep.Conditions
				if c.Ready != nil && !*c.Ready {
					continue // terminating fallback: not exercised by these tests' data
				}
				for _, ad := range ep.Addresses {
					add(ns+"/"+svc, portKey(name, *p.Port), node{ad, *p.Port, w})
				}
			}
		}
	}
	for _, ports := range out {
		for _, nodes := range ports {
			sort.Slice(nodes, func(i, j int) bool {
				if nodes[i].Host != nodes[j].Host {
					return nodes[i].Host < nodes[j].Host
				}
				return nodes[i].Port < nodes[j].Port
			})
		}
	}
	return out, took, nil
}

// kdiscServices reads the dump from the control API (single mode) and
// keeps the services of namespace ns ("" = all).
func kdiscServices(d *daemon, ns string) (services, error) {
	code, body := d.Get("/v1/discovery/kubernetes/dump")
	if code != http.StatusOK {
		return nil, fmt.Errorf("dump: %d %.300s", code, body)
	}
	var dm dump.Dump
	if err := json.Unmarshal([]byte(body), &dm); err != nil {
		return nil, err
	}
	out := services{}
	for _, c := range dm.Endpoints {
		for _, e := range c.Endpoints {
			if ns != "" && !strings.HasPrefix(e.Name, ns+"/") {
				continue
			}
			var ports map[string][]node
			if err := json.Unmarshal([]byte(e.Value), &ports); err != nil {
				return nil, fmt.Errorf("dump value of %s: %w", e.Name, err)
			}
			out[e.Name] = ports
		}
	}
	return out, nil
}

// diff describes how got differs from want, briefly ("" when equal).
func (want services) diff(got services) string {
	var missing, extra, differ []string
	for k, v := range want {
		g, ok := got[k]
		switch {
		case !ok:
			missing = append(missing, k)
		case !reflect.DeepEqual(v, g):
			differ = append(differ, k)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			extra = append(extra, k)
		}
	}
	if len(missing)+len(extra)+len(differ) == 0 {
		return ""
	}
	first := func(s []string) []string {
		sort.Strings(s)
		return s[:min(len(s), 3)]
	}
	msg := fmt.Sprintf("apiserver has %d services, kdisc serves %d: %d missing %v, %d extra %v, %d different %v",
		len(want), len(got), len(missing), first(missing), len(extra), first(extra), len(differ), first(differ))
	if len(differ) > 0 {
		k := differ[0]
		msg += fmt.Sprintf("; %s: apiserver %v, kdisc %v", k, want[k], got[k])
	}
	return msg
}

// converge polls until kdisc's table equals the apiserver's state for
// namespace ns, or timeout. It returns how long that took (measured from
// since), the last LIST's duration, and "" or the last difference.
func converge(t *testing.T, d *daemon, a *kubetest.APIServer, ns string, slices bool, since time.Time, timeout time.Duration) (took, list time.Duration, diff string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		want, l, err := apiServices(c, a, ns, slices, 50)
		cancel()
		if err != nil {
			diff = "apiserver: " + err.Error()
		} else if got, err := kdiscServices(d, ns); err != nil {
			diff = "kdisc: " + err.Error()
		} else {
			list = l
			if diff = want.diff(got); diff == "" {
				return time.Since(since), list, ""
			}
		}
		if time.Now().After(deadline) {
			return time.Since(since), list, diff
		}
		time.Sleep(100 * time.Millisecond) // poll interval
	}
}

// sample is one Prometheus sample.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// scrape reads /metrics (Prometheus text format, no timestamps).
func scrape(d *daemon) ([]sample, error) {
	code, body := d.Get("/metrics")
	if code != http.StatusOK {
		return nil, fmt.Errorf("/metrics: %d %.200s", code, body)
	}
	var out []sample
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s := sample{labels: map[string]string{}}
		rest := line
		if i := strings.IndexByte(line, '{'); i >= 0 {
			j := strings.LastIndexByte(line, '}')
			if j < i {
				return nil, fmt.Errorf("/metrics: bad line %q", line)
			}
			s.name = line[:i]
			if err := parseLabels(line[i+1:j], s.labels); err != nil {
				return nil, fmt.Errorf("/metrics: %q: %w", line, err)
			}
			rest = strings.TrimSpace(line[j+1:])
		} else {
			f := strings.Fields(line)
			s.name, rest = f[0], strings.Join(f[1:], " ")
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return nil, fmt.Errorf("/metrics: no value in %q", line)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return nil, fmt.Errorf("/metrics: %q: %w", line, err)
		}
		s.value = v
		out = append(out, s)
	}
	return out, sc.Err()
}

func parseLabels(s string, into map[string]string) error {
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimLeft(strings.TrimSpace(s), ",") {
		eq := strings.IndexByte(s, '=')
		if eq < 0 || len(s) < eq+2 || s[eq+1] != '"' {
			return fmt.Errorf("bad labels %q", s)
		}
		name := strings.TrimSpace(s[:eq])
		// Find the closing quote, honouring escapes.
		i := eq + 2
		for ; i < len(s) && s[i] != '"'; i++ {
			if s[i] == '\\' {
				i++
			}
		}
		if i >= len(s) {
			return fmt.Errorf("unterminated label %q", s)
		}
		v, err := strconv.Unquote(s[eq+1 : i+1])
		if err != nil {
			return err
		}
		into[name] = v
		s = s[i+1:]
	}
	return nil
}

// metric sums the samples called name whose labels include match; found
// is false when there is none.
func metric(samples []sample, name string, match map[string]string) (sum float64, found bool) {
next:
	for _, s := range samples {
		if s.name != name {
			continue
		}
		for k, v := range match {
			if s.labels[k] != v {
				continue next
			}
		}
		sum += s.value
		found = true
	}
	return sum, found
}

// requestsBy returns kdisc_apiserver_requests_total of cluster by
// "verb code", for the record.
func requestsBy(samples []sample, cluster string) map[string]float64 {
	out := map[string]float64{}
	for _, s := range samples {
		if s.name == "kdisc_apiserver_requests_total" && s.labels["cluster"] == cluster {
			out[s.labels["verb"]+" "+s.labels["code"]] += s.value
		}
	}
	return out
}

func replaceFirst(s, old, new string) string { return strings.Replace(s, old, new, 1) }
