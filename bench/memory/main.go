// Command memory measures the resident memory of a kdisc table's mapping:
// in the writer (kdisc run, -pid), in other readers (-readers, e.g. a
// proxy's workers) and in a reader it attaches itself, which looks up
// every port of every service in the table (so it touches every page that
// holds data). Each is read from /proc/PID/smaps: the Rss of the mapping
// of the table file, and its size.
//
//	memory -table /dev/shm/kdisc/kubernetes -pid PID [-readers PID,PID]
//
// It prints one line of key=value: writer_rss_kb, lookup_reader_rss_kb
// (its own), readers_rss_kb (the others', comma-separated), mapping_kb,
// services. bench/memory.sh drives it with bench/soak.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/kdisc/kdisc/shm"
)

func main() {
	table := flag.String("table", "", "the table file")
	pid := flag.Int("pid", 0, "the writer's process id (kdisc run)")
	others := flag.String("readers", "", "comma-separated process ids of other readers")
	flag.Parse()
	if *table == "" || *pid == 0 {
		fmt.Fprintln(os.Stderr, "usage: memory -table FILE -pid PID")
		os.Exit(2)
	}
	r, err := shm.Open(*table)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer r.Close()
	services, lookups := 0, 0
	var buf []shm.Node
	r.Range(func(key string, ports []shm.Port) bool {
		services++
		for _, p := range ports {
			buf, _ = r.Lookup(buf[:0], key+":"+p.Name)
			lookups++
		}
		return true
	})
	wRss, size, err := mappingRss(*pid, *table)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	rRss, _, err := mappingRss(os.Getpid(), *table)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var rs []string
	for _, p := range strings.FieldsFunc(*others, func(r rune) bool { return r == ',' }) {
		n, err := strconv.Atoi(p)
		if err != nil {
			fmt.Fprintln(os.Stderr, "memory: -readers:", err)
			os.Exit(2)
		}
		kb, _, err := mappingRss(n, *table)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		rs = append(rs, strconv.Itoa(kb))
	}
	fmt.Printf("writer_rss_kb=%d lookup_reader_rss_kb=%d readers_rss_kb=%s mapping_kb=%d services=%d lookups=%d\n",
		wRss, rRss, strings.Join(rs, ","), size, services, lookups)
}

// mappingRss sums Rss and Size of pid's mappings of the file at path. It
// matches the inode: the writer mapped the file under a temporary name
// (since renamed), which smaps shows.
func mappingRss(pid int, path string) (rss, size int, err error) {
	st, err := os.Stat(path)
	if err != nil {
		return 0, 0, err
	}
	ino := strconv.FormatUint(st.Sys().(*syscall.Stat_t).Ino, 10)
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/smaps")
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	in, found := false, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		if strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			in = len(fields) >= 6 && fields[4] == ino
			found = found || in
			continue
		}
		if in && len(fields) >= 2 && (fields[0] == "Rss:" || fields[0] == "Size:") {
			kb, _ := strconv.Atoi(fields[1])
			if fields[0] == "Rss:" {
				rss += kb
			} else {
				size += kb
			}
		}
	}
	if !found {
		return 0, 0, fmt.Errorf("memory: process %d maps no %s", pid, path)
	}
	return rss, size, sc.Err()
}
