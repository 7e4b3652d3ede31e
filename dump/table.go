package dump

import (
	"cmp"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// tableHosts is how many hosts a row of WriteTable shows.
const tableHosts = 3

// WriteTable writes d as a table for people (`kdisc dump -o table`): one
// row per service port, sorted by service then port, with the number of
// nodes and the first few hosts. SERVICE is what `kdisc nodes` takes
// before the colon ("id/namespace/name" in multi mode).
func WriteTable(w io.Writer, d Dump) error {
	type row struct {
		service, port string
		nodes         []struct {
			Host string `json:"host"`
			Port int    `json:"port"`
		}
	}
	var rows []row
	for _, c := range d.Endpoints {
		for _, e := range c.Endpoints {
			var ports map[string][]struct {
				Host string `json:"host"`
				Port int    `json:"port"`
			}
			if err := jsonStd.Unmarshal([]byte(e.Value), &ports); err != nil {
				return fmt.Errorf("dump: %s: %w", e.Name, err)
			}
			service := e.Name
			if c.ID != "" {
				service = c.ID + "/" + e.Name
			}
			for port, nodes := range ports {
				rows = append(rows, row{service: service, port: port, nodes: nodes})
			}
		}
	}
	slices.SortFunc(rows, func(a, b row) int {
		return cmp.Or(cmp.Compare(a.service, b.service), cmp.Compare(a.port, b.port))
	})
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tPORT\tNODES\tHOSTS")
	for _, r := range rows {
		hosts := make([]string, 0, tableHosts+1)
		for _, n := range r.nodes[:min(len(r.nodes), tableHosts)] {
			hosts = append(hosts, net.JoinHostPort(n.Host, strconv.Itoa(n.Port)))
		}
		if more := len(r.nodes) - tableHosts; more > 0 {
			hosts = append(hosts, fmt.Sprintf("(+%d more)", more))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", r.service, r.port, len(r.nodes), strings.Join(hosts, " "))
	}
	return tw.Flush()
}
