// Command kube-up starts a real kube-apiserver + etcd on loopback (building
// them on first use with testdata/kube/build.sh) and keeps them running in
// the foreground until Ctrl-C (SIGINT) or SIGTERM, then stops them cleanly.
//
//	go run ./internal/kubetest/cmd/kube-up [-env-file FILE] [-second] [-keep]
//
// It prints the URL, the CA file, the token files, client certificates and a
// kdisc configuration that works against the cluster.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/kdisc/kdisc/internal/kubetest"
)

func main() {
	envFile := flag.String("env-file", "", "also write the cluster's coordinates to `FILE` as shell variables (written once ready)")
	second := flag.Bool("second", false, "also start a second apiserver (another cluster on the same etcd) for multi-cluster setups")
	keep := flag.Bool("keep", false, "keep the cluster folder (logs, certificates, data) after stopping")
	tempDir := flag.String("dir", "", "parent `folder` of the cluster folder (default: the OS temp dir)")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("kube-up: ")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	c, err := kubetest.Start(ctx, kubetest.Options{
		TempDir: *tempDir,
		KeepDir: *keep,
		Logf:    log.Printf,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Stop()

	var c2 *kubetest.APIServer
	if *second {
		if c2, err = c.StartSecondAPIServer(ctx); err != nil {
			c.Stop()
			log.Fatal(err)
		}
	}

	for _, u := range []string{kubetest.UserAdmin, kubetest.UserDiscovery} {
		if err := writeKubeconfig(c, u); err != nil {
			c.Stop()
			log.Fatal(err)
		}
	}

	vars := map[string]string{
		"KDISC_KUBE_URL":                 c.URL,
		"KUBERNETES_SERVICE_HOST":        c.Host,
		"KUBERNETES_SERVICE_PORT":        strconv.Itoa(c.Port),
		"KDISC_KUBE_CA_FILE":             c.CAFile,
		"KDISC_KUBE_ADMIN_TOKEN_FILE":    c.AdminTokenFile,
		"KDISC_KUBE_TOKEN_FILE":          c.DiscoveryTokenFile,
		"KDISC_KUBE_NORIGHTS_TOKEN_FILE": c.NoRightsTokenFile,
		"KDISC_KUBE_DIR":                 c.Dir,
	}
	if c2 != nil {
		vars["KDISC_KUBE2_URL"] = c2.URL
		vars["KDISC_KUBE2_PORT"] = strconv.Itoa(c2.Port)
	}

	fmt.Printf(`
kube-apiserver is ready.

  URL                 %s
  CA file             %s
  admin token file    %s   (group system:masters)
  discovery token     %s   (ClusterRole kdisc-discovery: get/list/watch endpoints, endpointslices)
  norights token      %s   (authenticated, no rights)
  client certs        %s / %s (user discovery)
  kubeconfig          %s   (admin; kubeconfig-discovery.yaml too)
  logs                %s/*.log
`, c.URL, c.CAFile, c.AdminTokenFile, c.DiscoveryTokenFile, c.NoRightsTokenFile,
		c.DiscoveryCertFile, c.DiscoveryKeyFile, filepath.Join(c.Dir, "kubeconfig-admin.yaml"), c.Dir)
	if c2 != nil {
		fmt.Printf("  second apiserver    %s (same CA and tokens, its own data)\n", c2.URL)
	}
	fmt.Printf(`
Try:
  curl --cacert %s -H "Authorization: Bearer $(cat %s)" '%s/api/v1/endpoints'

kdisc config (config.yaml):
%s
No controller-manager runs: nothing creates Endpoints or EndpointSlices for
you, and their addresses must not be loopback (use 10.x / 192.168.x).
Press Ctrl-C to stop.
`, c.CAFile, c.DiscoveryTokenFile, c.URL, kubetest.Indent(c.KdiscConfig(""), "  "))

	if *envFile != "" {
		keys := make([]string, 0, len(vars))
		for k := range vars {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var b strings.Builder
		for _, k := range keys {
			fmt.Fprintf(&b, "%s=%q\n", k, vars[k])
		}
		tmp := *envFile + ".tmp"
		err := os.WriteFile(tmp, []byte(b.String()), 0o644)
		if err == nil {
			err = os.Rename(tmp, *envFile)
		}
		if err != nil {
			log.Printf("writing %s: %v", *envFile, err)
		}
		defer os.Remove(*envFile)
	}

	<-ctx.Done()
	log.Printf("stopping")
	c.Stop()
	log.Printf("stopped")
}

func writeKubeconfig(c *kubetest.Cluster, user string) error {
	id := c.Users[user]
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: kubetest
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: %s
  user:
    tokenFile: %s
contexts:
- name: kubetest-%s
  context:
    cluster: kubetest
    user: %s
current-context: kubetest-%s
`, c.URL, c.CAFile, user, id.TokenFile, user, user, user)
	return os.WriteFile(filepath.Join(c.Dir, "kubeconfig-"+user+".yaml"), []byte(cfg), 0o600)
}
