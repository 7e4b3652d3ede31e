package fakeapi

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// What the real apiserver does to a written object before storing it:
// defaulting, then validation (pkg/apis/core/validation and
// pkg/apis/discovery/validation). The fake refuses what the real server
// refuses, with its 422 message, so tests cannot rely on objects that
// cannot exist.

// setDefaults fills what the real server's defaulting fills. Storage is
// protobuf, which keeps no empty list: a slice's "endpoints":[] and
// "ports":[] come back as null.
func (e *Endpoints) setDefaults() {
	for i := range e.Subsets {
		for j := range e.Subsets[i].Ports {
			if p := &e.Subsets[i].Ports[j]; p.Protocol == "" {
				p.Protocol = "TCP"
			}
		}
	}
}

func (e *EndpointSlice) setDefaults() {
	for i := range e.Ports {
		p := &e.Ports[i]
		if p.Name == nil {
			p.Name = Ptr("")
		}
		if p.Protocol == nil {
			p.Protocol = Ptr("TCP")
		}
	}
	if len(e.Endpoints) == 0 {
		e.Endpoints = nil
	}
	if len(e.Ports) == 0 {
		e.Ports = nil
	}
}

// fieldError is k8s.io/apimachinery's field.Error.
type fieldError struct {
	reason string // the StatusCause reason, e.g. "FieldValueRequired"
	field  string
	body   string // "Required value", `Invalid value: "x": detail`
}

func (e fieldError) String() string { return e.field + ": " + e.body }

func required(field, detail string) fieldError {
	body := "Required value"
	if detail != "" {
		body += ": " + detail
	}
	return fieldError{"FieldValueRequired", field, body}
}

func invalid(field string, value any, detail string) fieldError {
	v := fmt.Sprint(value)
	if s, ok := value.(string); ok {
		v = fmt.Sprintf("%q", s)
	}
	return fieldError{"FieldValueInvalid", field, "Invalid value: " + v + ": " + detail}
}

func notSupported(field, value string, supported ...string) fieldError {
	quoted := make([]string, len(supported))
	for i, v := range supported {
		quoted[i] = fmt.Sprintf("%q", v)
	}
	return fieldError{"FieldValueNotSupported", field,
		fmt.Sprintf("Unsupported value: %q: supported values: %s", value, strings.Join(quoted, ", "))}
}

// invalidStatus is the 422 the real server answers, as errors.NewInvalid
// words it: `Endpoints "web" is invalid: subsets[0].ports[1].name:
// Required value`, several errors in brackets.
func invalidStatus(res *resource, name string, errs []fieldError) *Status {
	var msgs []string
	var causes []StatusCause
	for _, e := range errs {
		msgs = append(msgs, e.String())
		causes = append(causes, StatusCause{Reason: e.reason, Message: e.body, Field: e.field})
	}
	agg := msgs[0]
	if len(msgs) > 1 {
		agg = "[" + strings.Join(msgs, ", ") + "]"
	}
	kind := res.kind
	if res.group != "" {
		kind += "." + res.group
	}
	st := newStatus(http.StatusUnprocessableEntity, "Invalid", fmt.Sprintf("%s %q is invalid: %s", kind, name, agg))
	st.Details = &StatusDetails{Name: name, Group: res.group, Kind: res.kind, Causes: causes}
	return st
}

// Error makes a Status usable as the error of TryPutEndpoints and
// TryPutEndpointSlice.
func (st *Status) Error() string { return st.Message }

var protocols = []string{"SCTP", "TCP", "UDP"}

func (e *Endpoints) validate() []fieldError {
	var errs []fieldError
	for i, ss := range e.Subsets {
		path := fmt.Sprintf("subsets[%d]", i)
		if len(ss.Addresses) == 0 && len(ss.NotReadyAddresses) == 0 {
			errs = append(errs, required(path, "must specify `addresses` or `notReadyAddresses`"))
		}
		for j, a := range ss.Addresses {
			errs = append(errs, validateIP(fmt.Sprintf("%s.addresses[%d].ip", path, j), a.IP, "")...)
		}
		for j, a := range ss.NotReadyAddresses {
			errs = append(errs, validateIP(fmt.Sprintf("%s.notReadyAddresses[%d].ip", path, j), a.IP, "")...)
		}
		for j, p := range ss.Ports {
			pp := fmt.Sprintf("%s.ports[%d]", path, j)
			if p.Name == "" && len(ss.Ports) > 1 {
				errs = append(errs, required(pp+".name", ""))
			}
			if p.Port < 1 || p.Port > 65535 {
				errs = append(errs, invalid(pp+".port", p.Port, "must be between 1 and 65535, inclusive"))
			}
			if !contains(protocols, p.Protocol) {
				errs = append(errs, notSupported(pp+".protocol", p.Protocol, protocols...))
			}
		}
	}
	return errs
}

func (e *EndpointSlice) validate() []fieldError {
	var errs []fieldError
	switch e.AddressType {
	case "IPv4", "IPv6", "FQDN":
	case "":
		errs = append(errs, required("addressType", ""))
	default:
		errs = append(errs, notSupported("addressType", e.AddressType, "FQDN", "IPv4", "IPv6"))
	}
	for i, ep := range e.Endpoints {
		path := fmt.Sprintf("endpoints[%d].addresses", i)
		if len(ep.Addresses) == 0 {
			errs = append(errs, required(path, "must contain at least 1 address"))
		}
		for j, a := range ep.Addresses {
			p := fmt.Sprintf("%s[%d]", path, j)
			switch e.AddressType {
			case "IPv4", "IPv6":
				errs = append(errs, validateIP(p, a, e.AddressType)...)
			case "FQDN":
				errs = append(errs, validateFQDN(p, a)...)
			}
		}
	}
	for i, p := range e.Ports {
		if p.Protocol != nil && !contains(protocols, *p.Protocol) {
			errs = append(errs, notSupported(fmt.Sprintf("ports[%d].protocol", i), *p.Protocol, protocols...))
		}
	}
	return errs
}

// validateIP refuses what is not an IP (of family "IPv4" or "IPv6" when
// given) and the addresses no endpoint may have (ValidateEndpointIP).
func validateIP(field, s, family string) []fieldError {
	ip, err := netip.ParseAddr(s)
	switch {
	case err != nil || ip.Zone() != "":
		if family == "" {
			return []fieldError{invalid(field, s, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")}
		}
		return []fieldError{invalid(field, s, "must be a valid "+family+" address")}
	case family == "IPv4" && !ip.Unmap().Is4(), family == "IPv6" && (!ip.Is6() || ip.Is4In6()):
		return []fieldError{invalid(field, s, "must be a valid "+family+" address")}
	}
	var errs []fieldError
	if ip.IsUnspecified() {
		errs = append(errs, invalid(field, s, fmt.Sprintf("may not be unspecified (%s)", s)))
	}
	if ip.IsLoopback() {
		errs = append(errs, invalid(field, s, "may not be in the loopback range (127.0.0.0/8, ::1/128)"))
	}
	if ip.IsLinkLocalUnicast() {
		errs = append(errs, invalid(field, s, "may not be in the link-local range (169.254.0.0/16, fe80::/10)"))
	}
	if ip.IsLinkLocalMulticast() {
		errs = append(errs, invalid(field, s, "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"))
	}
	return errs
}

// validateFQDN is validation.IsFullyQualifiedDomainName.
func validateFQDN(field, name string) []fieldError {
	name = strings.TrimSuffix(name, ".")
	switch {
	case name == "":
		return []fieldError{required(field, "")}
	case len(name) > 253 || !dnsSubRE.MatchString(name):
		return []fieldError{invalid(field, name, "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "+
			"'-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "+
			`'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`)}
	case !strings.Contains(name, "."):
		return []fieldError{invalid(field, name, "should be a domain with at least two segments separated by dots")}
	}
	return nil
}
