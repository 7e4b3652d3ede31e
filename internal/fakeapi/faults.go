package fakeapi

import (
	"fmt"
	"net/http"
)

// Fault is a failure injected into matching requests with Server.Fail.
// Build one with the functions below.
type Fault struct {
	kind       faultKind
	retryAfter int
	user       string
	release    chan struct{} // for Stall: set when the fault fires
}

type faultKind int

const (
	faultNone faultKind = iota
	faultTooMany
	faultInternal
	faultUnavailable
	faultForbidden
	faultUnauthorized
	faultDrop
	faultStall
	faultMalformed
)

func (f Fault) String() string {
	return [...]string{"none", "TooManyRequests", "InternalError", "ServiceUnavailable",
		"Forbidden", "Unauthorized", "DropMidEvent", "Stall", "Malformed"}[f.kind]
}

// TooManyRequests answers 429 with Retry-After, as API Priority and
// Fairness does when a flow is throttled.
func TooManyRequests(retryAfterSeconds int) Fault {
	return Fault{kind: faultTooMany, retryAfter: retryAfterSeconds}
}

// InternalError answers 500 InternalError.
func InternalError() Fault { return Fault{kind: faultInternal} }

// ServiceUnavailable answers 503 with Retry-After (apiserver starting or
// shutting down, an aggregator with no backend).
func ServiceUnavailable(retryAfterSeconds int) Fault {
	return Fault{kind: faultUnavailable, retryAfter: retryAfterSeconds}
}

// Forbidden answers 403 with the RBAC message the real server writes for
// user (e.g. "system:serviceaccount:apisix:apisix").
func Forbidden(user string) Fault { return Fault{kind: faultForbidden, user: user} }

// Unauthorized answers 401 whatever the token (SetToken checks tokens for
// real; this is for a one-off refusal).
func Unauthorized() Fault { return Fault{kind: faultUnauthorized} }

// DropMidEvent sends 200 and cuts the TCP connection in the middle of the
// first thing written: a prefix of the list body, or of the next watch
// event (the stream waits for one, so Put something or SendBookmark).
func DropMidEvent() Fault { return Fault{kind: faultDrop} }

// Stall sends 200 and its headers, then nothing until the client gives up
// or the test calls ReleaseStalls, after which the request is served
// normally.
func Stall() Fault { return Fault{kind: faultStall} }

// Malformed inserts one well-formed JSON object with fields of the wrong
// type (a string where a list belongs, a string port) into the list items,
// or as the first event of the watch; the rest is served normally. A client
// must skip it and carry on.
func Malformed() Fault { return Fault{kind: faultMalformed} }

// Matcher selects requests, for Fail and WaitRequests.
type Matcher func(Request) bool

// Resource names, as they appear in URLs and Request.Resource.
const (
	EndpointsResource      = "endpoints"
	EndpointSlicesResource = "endpointslices"
)

// AnyRequest matches every request.
func AnyRequest(Request) bool { return true }

// IsList matches LIST (and GET of one object) requests for resource
// (EndpointsResource or EndpointSlicesResource; "" for either).
func IsList(resource string) Matcher {
	return func(r Request) bool {
		return r.Resource != "" && !r.Watch && (resource == "" || r.Resource == resource)
	}
}

// IsWatch matches WATCH requests for resource ("" for either).
func IsWatch(resource string) Matcher {
	return func(r Request) bool {
		return r.Resource != "" && r.Watch && (resource == "" || r.Resource == resource)
	}
}

// rule is an armed fault: it fires on the next `left` matching requests
// (forever when left < 0).
type rule struct {
	match Matcher
	fault Fault
	left  int
}

// faultStatus is the Status a status-only fault answers with, nil for the
// faults that need the handler (drop, stall, malformed).
func faultStatus(f Fault, req Request, res *resource) *Status {
	switch f.kind {
	case faultTooMany:
		st := newStatus(http.StatusTooManyRequests, "TooManyRequests", "Too many requests, please try again later.")
		st.Details = &StatusDetails{RetryAfterSeconds: f.retryAfter}
		return st
	case faultInternal:
		st := newStatus(http.StatusInternalServerError, "InternalError",
			"Internal error occurred: etcdserver: request timed out")
		st.Details = &StatusDetails{Causes: []StatusCause{{Message: "etcdserver: request timed out"}}}
		return st
	case faultUnavailable:
		st := newStatus(http.StatusServiceUnavailable, "ServiceUnavailable",
			"the server is currently unable to handle the request")
		st.Details = &StatusDetails{RetryAfterSeconds: f.retryAfter}
		return st
	case faultUnauthorized:
		return unauthorizedStatus()
	case faultForbidden:
		return forbiddenStatus(f.user, req, res)
	}
	return nil
}

func unauthorizedStatus() *Status {
	return newStatus(http.StatusUnauthorized, "Unauthorized", "Unauthorized")
}

// forbiddenStatus words the message as the RBAC authorizer does.
func forbiddenStatus(user string, req Request, res *resource) *Status {
	verb := "list"
	switch {
	case req.Watch:
		verb = "watch"
	case req.Name != "":
		verb = "get"
	}
	name, group := req.Resource, ""
	if res != nil {
		name, group = res.name, res.group
	}
	scope := "at the cluster scope"
	if req.Namespace != "" {
		scope = fmt.Sprintf("in the namespace %q", req.Namespace)
	}
	what := name
	if group != "" {
		what = name + "." + group
	}
	if req.Name != "" {
		what = fmt.Sprintf("%s %q", what, req.Name)
	}
	msg := fmt.Sprintf("%s is forbidden: User %q cannot %s resource %q in API group %q %s",
		what, user, verb, name, group, scope)
	st := newStatus(http.StatusForbidden, "Forbidden", msg)
	st.Details = &StatusDetails{Name: req.Name, Group: group, Kind: name}
	return st
}

// malformedItem is a syntactically valid object with wrong field types.
func malformedItem(res *resource, ns string, rv uint64, withType bool) []byte {
	if ns == "" {
		ns = "default"
	}
	typ := ""
	if withType {
		typ = fmt.Sprintf(`"kind":%q,"apiVersion":%q,`, res.kind, res.apiVersion)
	}
	meta := fmt.Sprintf(`"metadata":{"name":"malformed","namespace":%q,"uid":%q,"resourceVersion":"%d","creationTimestamp":"2026-01-12T08:15:03Z"}`,
		ns, fakeUID("malformed", ns), rv)
	if res == resEndpointSlices {
		return fmt.Appendf(nil, `{%s%s,"addressType":"IPv4","endpoints":[{"addresses":"10.9.9.9","conditions":{"ready":"yes"}}],"ports":[{"name":"http","protocol":"TCP","port":"eighty"}]}`, typ, meta)
	}
	return fmt.Appendf(nil, `{%s%s,"subsets":{"addresses":"10.9.9.9","ports":[{"name":"http","port":"eighty","protocol":"TCP"}]}}`, typ, meta)
}
