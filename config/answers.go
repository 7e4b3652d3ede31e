package config

// The keys of the semantics issue ("answers a proxy can act on"), per
// cluster:
//
//	terminating_fallback: true   # default; EndpointSlices only
//	zone: ${NODE_ZONE}           # optional; EndpointSlices only
//	node: ${NODE_NAME}           # optional; EndpointSlices only (hints.forNodes)
//	node_detail: false           # default

// answerKeys are the cluster keys parseAnswers reads.
var answerKeys = []string{"terminating_fallback", "zone", "node", "node_detail"}

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
	var err error
	if c.Zone, c.ZoneName, err = expandedString(path, m, "zone", "a zone name"); err != nil {
		return err
	}
	if c.Node, c.NodeName, err = expandedString(path, m, "node", "a node name"); err != nil {
		return err
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

// expandedString reads the optional string key of m, as written and with
// ${ENV} expanded; what says what it names in the error.
func expandedString(path string, m map[string]any, key, what string) (written, expanded string, err error) {
	v, ok := m[key]
	if !ok {
		return "", "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", "", errorf(path+"."+key, "must be a string (%s or ${ENV})", what)
	}
	expanded, err = expand(path+"."+key, s)
	return s, expanded, err
}

// IgnoredForEndpoints lists the keys written for this cluster that apply
// to EndpointSlices only, when it watches Endpoints (they are accepted and
// ignored; kdisc warns at start): terminating_fallback, zone and node.
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
	if c.Node != "" {
		keys = append(keys, "node")
	}
	return keys
}

// effAnswers are the keys in the effective configuration, shown when
// written (node_detail when true), so that configurations without them
// print as before.
type effAnswers struct {
	TerminatingFallback bool   `json:"terminating_fallback"` // defaults filled, as every key with a default
	Zone                string `json:"zone,omitempty"`
	Node                string `json:"node,omitempty"`
	NodeDetail          bool   `json:"node_detail"`
}

func (c *Cluster) effectiveAnswers() effAnswers {
	return effAnswers{TerminatingFallback: c.TerminatingFallback, Zone: c.Zone, Node: c.Node, NodeDetail: c.NodeDetail}
}
