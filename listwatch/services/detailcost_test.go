package services

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kdisc/kdisc/shm"
)

// TestDetailTableCost measures what node_detail costs in the table: 1,000
// services of 3 IPv4 pods on one port, stored as the watcher stores them
// (with and without their detail), compared by Stats().UsedBytes. The
// detail is realistic: a node name, a zone, and a Pod targetRef with a
// ReplicaSet-style name and a UID. The numbers are in docs/configuration.md (node_detail).
func TestDetailTableCost(t *testing.T) {
	const services, addrs = 1000, 3
	for _, c := range []struct {
		name string
		info func(svc, i int) *placement
	}{
		{"pod targetRef, nodeName, zone", func(svc, i int) *placement {
			return &placement{
				nodeName: fmt.Sprintf("ip-10-%d-%d-%d.eu-west-1.compute.internal", svc%250, i, svc%200),
				zone:     "eu-west-1" + string(rune('a'+i)),
				kind:     "Pod", name: fmt.Sprintf("svc%d-7d9f8b6c5d-%05d", svc, i),
				uid: fmt.Sprintf("6b0c%04d-1c2d-4e5f-8a9b-%012d", svc, i),
			}
		}},
		{"nodeName only", func(svc, i int) *placement {
			return &placement{nodeName: fmt.Sprintf("node-%d", (svc+i)%50)}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			w, err := shm.Create("", 16<<20)
			require.NoError(t, err)
			defer w.Close()
			s := newEndpointsState(50)
			s.withDetail = true
			details := map[string][]byte{}
			base := w.Stats().UsedBytes
			for svc := range services {
				o := object{namespace: "default", name: fmt.Sprintf("svc%d", svc)}
				sub := subset{ports: []port{{name: "http", number: 8080}}}
				for i := range addrs {
					sub.addresses = append(sub.addresses, fmt.Sprintf("10.%d.%d.%d", svc/250, svc%250, i+1))
					sub.infos = append(sub.infos, c.info(svc, i))
				}
				o.subsets = []subset{sub}
				key, ports, detail, err := buildValue(s, &o)
				require.NoError(t, err)
				require.NoError(t, w.Put(key, ports))
				details[strings.Clone(key)] = detail
			}
			plain := w.Stats().UsedBytes - base
			var detailBytes int
			for key, d := range details {
				detailBytes += len(d)
				require.NoError(t, w.PutDetail(key, d))
			}
			with := w.Stats().UsedBytes - base
			t.Logf("%d services x %d addresses: %d bytes/service without detail, %d with (+%d; the detail JSON is %d bytes/service)",
				services, addrs, plain/services, with/services, (with-plain)/services, detailBytes/services)
			require.Greater(t, with, plain)
		})
	}
}
