package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/kdisc/kdisc/config"
)

// source is where a command takes its configuration from: -config FILE,
// or -kubeconfig FILE [-context NAME] (a single cluster from that context,
// every other key at its default). kdisc never reads $KUBECONFIG or
// ~/.kube/config unless named here.
type source struct {
	config, kubeconfig, context *string
}

func sourceFlags(fs *flag.FlagSet) source {
	return source{
		config:     fs.String("config", "", "configuration file (APISIX config.yaml style)"),
		kubeconfig: fs.String("kubeconfig", "", "kubeconfig file: a single cluster from its context (instead of -config)"),
		context:    fs.String("context", "", "context of -kubeconfig (default: its current-context)"),
	}
}

// load reads the configuration; on a usage or configuration error it says
// why on stderr and returns nil. It never runs an exec plugin: only
// `kdisc run` contacts the apiserver, and it runs the plugin then.
func (s source) load(cmd string, stderr io.Writer) *config.Config {
	var (
		cfg *config.Config
		err error
	)
	switch {
	case *s.config != "" && *s.kubeconfig != "":
		fmt.Fprintf(stderr, "kdisc %s: -config and -kubeconfig go not together: give one (a config file can name kubeconfigs per cluster)\n", cmd)
		return nil
	case *s.context != "" && *s.kubeconfig == "":
		fmt.Fprintf(stderr, "kdisc %s: -context needs -kubeconfig\n", cmd)
		return nil
	case *s.kubeconfig != "":
		cfg, err = config.FromKubeconfig(*s.kubeconfig, *s.context)
	case *s.config != "":
		cfg, err = config.Load(*s.config)
	default:
		fmt.Fprintf(stderr, "kdisc %s: -config is required (or -kubeconfig FILE)\n", cmd)
		return nil
	}
	if err != nil {
		fmt.Fprintf(stderr, "kdisc %s: %v\n", cmd, err)
		return nil
	}
	return cfg
}
