package config

// The keys of the semantics issue ("answers a proxy can act on"), per
// cluster:
//
//	terminating_fallback: true   # default; EndpointSlices only
//	zone: ${NODE_ZONE}           # optional; EndpointSlices only
//	node_detail: false           # default

// answerKeys are the cluster keys parseAnswers reads.
var answerKeys = []string{"terminating_fallback", "zone", "node_detail"}

// answers is what parseAnswers remembers as written, for Effective and
// IgnoredForEndpoints.
type answers struct {
	fallbackSet *bool // terminating_fallback as written; nil when absent
}

func (c *Cluster) parseAnswers(path string, m map[string]any, _ bool) error {
	c.TerminatingFallback = true
	if v, ok := m["terminating_fallback"]; ok {
		b, ok := v.(bool)
		if !ok {
			return errorf(path+".terminating_fallback", "must be true or false")
		}
		c.TerminatingFallback, c.answers.fallbackSet = b, &b
	}
	if v, ok := m["zone"]; ok {
		s, ok := v.(string)
		if !ok {
			return errorf(path+".zone", "must be a string (a zone name or ${ENV})")
		}
		zone, err := expand(path+".zone", s)
		if err != nil {
			return err
		}
		c.Zone, c.ZoneName = s, zone
	}
	if v, ok := m["node_detail"]; ok {
		b, ok := v.(bool)
		if !ok {
			return errorf(path+".node_detail", "must be true or false")
		}
		c.NodeDetail = b
	}
	return nil
}

// IgnoredForEndpoints lists the keys written for this cluster that apply
// to EndpointSlices only, when it watches Endpoints (they are accepted and
// ignored; kdisc warns at start): terminating_fallback and zone.
func (c *Cluster) IgnoredForEndpoints() []string {
	if c.WatchEndpointSlices {
		return nil
	}
	var keys []string
	if c.answers.fallbackSet != nil {
		keys = append(keys, "terminating_fallback")
	}
	if c.Zone != "" {
		keys = append(keys, "zone")
	}
	return keys
}

// effAnswers are the keys in the effective configuration, shown when
// written (node_detail when true), so that configurations without them
// print as before.
type effAnswers struct {
	TerminatingFallback bool   `json:"terminating_fallback"` // defaults filled, as every key with a default
	Zone                string `json:"zone,omitempty"`
	NodeDetail          bool   `json:"node_detail"`
}

func (c *Cluster) effectiveAnswers() effAnswers {
	return effAnswers{TerminatingFallback: c.TerminatingFallback, Zone: c.Zone, NodeDetail: c.NodeDetail}
}
