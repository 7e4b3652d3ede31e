package main

import (
	"runtime/debug"

	"github.com/kdisc/kdisc/config"
)

// GC defaults of `kdisc run` (this command only: the library a proxy links
// never changes its host's GC settings). The user's environment wins:
// GOGC set (to anything, "off" included) leaves the GC percent alone,
// GOMEMLIMIT set leaves the memory limit alone.
const (
	// defaultGCPercent halves the garbage kept between collections
	// (GOGC=100: up to the live heap again). Measured with
	// internal/replay: peak RSS -16% at 50k Endpoints, -20% at 50k
	// EndpointSlices, for about 15% more CPU (bench/RESULTS.md).
	defaultGCPercent = 50
	// The soft memory limit is a backstop, not the usual regulator: a base
	// for the runtime, buffers and decode garbage, plus room for the
	// per-service state, which grows with the services the tables hold
	// (shared_size). It binds only when the heap outgrows what the
	// configured tables suggest (a burst of events, a relist): the GC then
	// runs more often rather than letting the heap double.
	memLimitBase      = 32 << 20
	memLimitPerShared = 4 // × the sum of the clusters' shared_size
)

// gcSettings is what gcDefaults decided; a negative field is left as the
// runtime has it.
type gcSettings struct {
	percent int
	limit   int64
}

// gcDefaults decides kdisc run's GC settings for cfg; lookupEnv is
// os.LookupEnv.
func gcDefaults(cfg *config.Config, lookupEnv func(string) (string, bool)) gcSettings {
	s := gcSettings{percent: -1, limit: -1}
	if v, set := lookupEnv("GOGC"); !set || v == "" { // the runtime ignores an empty one too
		s.percent = defaultGCPercent
	}
	if v, set := lookupEnv("GOMEMLIMIT"); !set || v == "" {
		var shared int64
		for _, c := range cfg.Clusters {
			shared += c.SharedSizeBytes
		}
		s.limit = memLimitBase + memLimitPerShared*shared
	}
	return s
}

// apply sets them and returns the attributes to log.
func (s gcSettings) apply() []any {
	var attrs []any
	if s.percent >= 0 {
		debug.SetGCPercent(s.percent)
		attrs = append(attrs, "gogc", s.percent)
	} else {
		attrs = append(attrs, "gogc", "from GOGC")
	}
	if s.limit >= 0 {
		debug.SetMemoryLimit(s.limit)
		attrs = append(attrs, "memory_limit_mib", s.limit>>20)
	} else {
		attrs = append(attrs, "memory_limit_mib", "from GOMEMLIMIT")
	}
	return attrs
}
