package kubetest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
)

func tlsConfig(caFile string) (*tls.Config, error) {
	pemBytes, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("kubetest: no certificate in %s", caFile)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// TLSConfig returns a TLS configuration that verifies the apiserver against
// CAFile (no client certificate; add one for mTLS).
func (a *APIServer) TLSConfig() *tls.Config {
	return a.tlsConfig.Clone()
}

// HTTPClient returns the http.Client the helpers use: TLS verified against
// CAFile, no timeout (watches are long), no credentials attached.
func (a *APIServer) HTTPClient() *http.Client { return a.client }

func readAll(resp *http.Response) []byte {
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b
}

// encodeBody turns body into request bytes: nil is no body; []byte,
// json.RawMessage, string and io.Reader are sent as they are; anything else
// is JSON-encoded.
func encodeBody(body any) (io.Reader, error) {
	switch b := body.(type) {
	case nil:
		return nil, nil
	case []byte:
		return bytes.NewReader(b), nil
	case json.RawMessage:
		return bytes.NewReader(b), nil
	case string:
		return strings.NewReader(b), nil
	case io.Reader:
		return b, nil
	default:
		data, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		return bytes.NewReader(data), nil
	}
}

// UserAgent is sent by the helpers; the apiserver records it as the field
// manager in managedFields.
const UserAgent = "kdisc-kubetest"

// Request sends an HTTP request to this apiserver with token as bearer
// token ("" sends none) and returns the response for the caller to read and
// close: use it for watches and to look at headers (e.g. Warning). path
// includes the query. PATCH bodies are sent as application/merge-patch+json,
// others as application/json.
func (a *APIServer) Request(ctx context.Context, token, method, path string, body any) (*http.Response, error) {
	r, err := encodeBody(body)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, a.URL+path, r)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", UserAgent)
	if r != nil {
		ct := "application/json"
		if method == http.MethodPatch {
			ct = "application/merge-patch+json"
		}
		req.Header.Set("Content-Type", ct)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return a.client.Do(req)
}

// DoAs sends a request with token and returns the whole response body and
// the status code. err is only for transport errors: a 4xx/5xx is returned
// as a status with the apiserver's Status body.
func (a *APIServer) DoAs(ctx context.Context, token, method, path string, body any) ([]byte, int, error) {
	resp, err := a.Request(ctx, token, method, path, body)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return b, resp.StatusCode, err
}

// Do is DoAs with the admin token (group system:masters).
func (a *APIServer) Do(ctx context.Context, method, path string, body any) ([]byte, int, error) {
	return a.DoAs(ctx, a.AdminToken, method, path, body)
}

// StatusError is a non-2xx answer from the apiserver.
type StatusError struct {
	Method, Path string
	Code         int
	Body         string // usually a JSON Status object
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("kubetest: %s %s: %d %s", e.Method, e.Path, e.Code, strings.TrimSpace(e.Body))
}

// IsStatus reports whether err is a StatusError with the given code.
func IsStatus(err error, code int) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Code == code
}

// call is Do that turns a non-2xx status into a *StatusError.
func (a *APIServer) call(ctx context.Context, method, path string, body any) ([]byte, error) {
	b, code, err := a.Do(ctx, method, path, body)
	if err != nil {
		return nil, fmt.Errorf("kubetest: %s %s: %w", method, path, err)
	}
	if code < 200 || code > 299 {
		return b, &StatusError{Method: method, Path: path, Code: code, Body: string(b)}
	}
	return b, nil
}

// ResourceVersion returns metadata.resourceVersion of a JSON object or list
// ("" when absent or not JSON).
func ResourceVersion(obj []byte) string {
	var m struct {
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
	}
	_ = json.Unmarshal(obj, &m)
	return m.Metadata.ResourceVersion
}

// ---- objects ----

// kinds maps "apiVersion/Kind" to the resource name and whether it is
// namespaced. Unknown kinds fall back to lower-case kind + "s", namespaced
// when metadata.namespace is set.
var kinds = map[string]struct {
	resource   string
	namespaced bool
}{
	"v1/Namespace":                      {"namespaces", false},
	"v1/ServiceAccount":                 {"serviceaccounts", true},
	"v1/Service":                        {"services", true},
	"v1/Endpoints":                      {"endpoints", true},
	"v1/ConfigMap":                      {"configmaps", true},
	"v1/Secret":                         {"secrets", true},
	"discovery.k8s.io/v1/EndpointSlice": {"endpointslices", true},
	"rbac.authorization.k8s.io/v1/ClusterRole":        {"clusterroles", false},
	"rbac.authorization.k8s.io/v1/ClusterRoleBinding": {"clusterrolebindings", false},
	"rbac.authorization.k8s.io/v1/Role":               {"roles", true},
	"rbac.authorization.k8s.io/v1/RoleBinding":        {"rolebindings", true},
	"apps/v1/Deployment":                              {"deployments", true},
	"apps/v1/DaemonSet":                               {"daemonsets", true},
	"v1/Pod":                                          {"pods", true},
}

// ObjectPath returns the collection path and the object path of obj (a
// decoded Kubernetes object).
func ObjectPath(obj map[string]any) (collection, object string, err error) {
	apiVersion, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	meta, _ := obj["metadata"].(map[string]any)
	name, _ := meta["name"].(string)
	ns, _ := meta["namespace"].(string)
	if apiVersion == "" || kind == "" || name == "" {
		return "", "", fmt.Errorf("kubetest: object needs apiVersion, kind and metadata.name (got %q %q %q)", apiVersion, kind, name)
	}
	k, ok := kinds[apiVersion+"/"+kind]
	if !ok {
		k.resource, k.namespaced = strings.ToLower(kind)+"s", ns != ""
	}
	base := "/apis/" + apiVersion
	if !strings.Contains(apiVersion, "/") {
		base = "/api/" + apiVersion
	}
	if k.namespaced {
		if ns == "" {
			ns = "default"
		}
		base += "/namespaces/" + url.PathEscape(ns)
	}
	collection = base + "/" + k.resource
	return collection, collection + "/" + url.PathEscape(name), nil
}

// Apply creates obj, or replaces it when it exists (GET for the current
// resourceVersion, then PUT, retried on conflicts). obj is anything that
// encodes to a Kubernetes object: a struct, a map, []byte JSON. It returns
// the stored object as the apiserver answered it.
func (a *APIServer) Apply(ctx context.Context, obj any) ([]byte, error) {
	var m map[string]any
	raw, ok := obj.([]byte)
	if !ok {
		var err error
		if raw, err = json.Marshal(obj); err != nil {
			return nil, err
		}
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("kubetest: Apply: %w", err)
	}
	coll, path, err := ObjectPath(m)
	if err != nil {
		return nil, err
	}
	b, err := a.call(ctx, http.MethodPost, coll, m)
	if !IsStatus(err, http.StatusConflict) {
		return b, err
	}
	for attempt := 0; ; attempt++ {
		cur, err := a.call(ctx, http.MethodGet, path, nil)
		if err != nil {
			return cur, err
		}
		meta, _ := m["metadata"].(map[string]any)
		meta["resourceVersion"] = ResourceVersion(cur)
		b, err = a.call(ctx, http.MethodPut, path, m)
		if !IsStatus(err, http.StatusConflict) || attempt == 5 {
			return b, err
		}
	}
}

// DryRun has the apiserver validate obj as it would store it, without
// storing it: a create with dryRun=All and fieldValidation=Strict (an
// unknown or duplicated field, a typo, is an error, as are admission's
// refusals), or, when obj exists already, the same for replacing it.
func (a *APIServer) DryRun(ctx context.Context, obj any) error {
	raw, ok := obj.([]byte)
	if !ok {
		var err error
		if raw, err = json.Marshal(obj); err != nil {
			return err
		}
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("kubetest: DryRun: %w", err)
	}
	coll, path, err := ObjectPath(m)
	if err != nil {
		return err
	}
	const q = "?dryRun=All&fieldValidation=Strict"
	_, err = a.call(ctx, http.MethodPost, coll+q, raw)
	if !IsStatus(err, http.StatusConflict) {
		return err
	}
	cur, err := a.call(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	meta, _ := m["metadata"].(map[string]any)
	meta["resourceVersion"] = ResourceVersion(cur)
	_, err = a.call(ctx, http.MethodPut, path+q, m)
	return err
}

// ApplyYAML applies every document of a (multi-document) YAML manifest, in
// order, converting each to JSON with goccy/go-yaml.
func (a *APIServer) ApplyYAML(ctx context.Context, manifest []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(manifest))
	for {
		var doc any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("kubetest: manifest: %w", err)
		}
		if doc == nil {
			continue
		}
		data, err := json.Marshal(doc)
		if err != nil {
			return fmt.Errorf("kubetest: manifest to JSON: %w", err)
		}
		if _, err := a.Apply(ctx, data); err != nil {
			return err
		}
	}
}

// CreateNamespace creates namespace name; an existing one is fine. Note that
// nothing deletes a namespace for real in a bare apiserver (no
// controller-manager): a deleted namespace stays Terminating, so use fresh
// names instead of deleting.
func (a *APIServer) CreateNamespace(ctx context.Context, name string) error {
	_, err := a.call(ctx, http.MethodPost, "/api/v1/namespaces", map[string]any{
		"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": name},
	})
	if IsStatus(err, http.StatusConflict) {
		return nil
	}
	return err
}

// Delete deletes the object at path; one that does not exist is fine.
func (a *APIServer) Delete(ctx context.Context, path string) error {
	_, err := a.call(ctx, http.MethodDelete, path, nil)
	if IsStatus(err, http.StatusNotFound) {
		return nil
	}
	return err
}

// ---- Endpoints and EndpointSlices ----

// EndpointAddress is core/v1 EndpointAddress (only what tests need).
type EndpointAddress struct {
	IP       string  `json:"ip"`
	Hostname string  `json:"hostname,omitempty"`
	NodeName *string `json:"nodeName,omitempty"`
}

// EndpointPort is core/v1 EndpointPort.
type EndpointPort struct {
	Name        string  `json:"name,omitempty"`
	Port        int32   `json:"port"`
	Protocol    string  `json:"protocol,omitempty"`
	AppProtocol *string `json:"appProtocol,omitempty"`
}

// EndpointSubset is core/v1 EndpointSubset.
type EndpointSubset struct {
	Addresses         []EndpointAddress `json:"addresses,omitempty"`
	NotReadyAddresses []EndpointAddress `json:"notReadyAddresses,omitempty"`
	Ports             []EndpointPort    `json:"ports,omitempty"`
}

// Subset is a shorthand: ready addresses ips with ports.
func Subset(ips []string, ports ...EndpointPort) EndpointSubset {
	s := EndpointSubset{Ports: ports}
	for _, ip := range ips {
		s.Addresses = append(s.Addresses, EndpointAddress{IP: ip})
	}
	return s
}

// ApplyEndpoints creates or replaces the Endpoints ns/name with subsets
// and returns the stored object. Addresses must not be loopback (the
// apiserver refuses them): use 10.x or 192.168.x, they are only data.
func (a *APIServer) ApplyEndpoints(ctx context.Context, ns, name string, subsets ...EndpointSubset) ([]byte, error) {
	if subsets == nil {
		subsets = []EndpointSubset{}
	}
	return a.Apply(ctx, map[string]any{
		"apiVersion": "v1",
		"kind":       "Endpoints",
		"metadata":   map[string]any{"name": name, "namespace": ns},
		"subsets":    subsets,
	})
}

// DeleteEndpoints deletes the Endpoints ns/name (absent is fine).
func (a *APIServer) DeleteEndpoints(ctx context.Context, ns, name string) error {
	return a.Delete(ctx, "/api/v1/namespaces/"+ns+"/endpoints/"+name)
}

// EndpointConditions is discovery/v1 EndpointConditions; nil fields are
// absent (absent ready means ready).
type EndpointConditions struct {
	Ready       *bool `json:"ready,omitempty"`
	Serving     *bool `json:"serving,omitempty"`
	Terminating *bool `json:"terminating,omitempty"`
}

// SliceEndpoint is discovery/v1 Endpoint.
type SliceEndpoint struct {
	Addresses  []string            `json:"addresses"`
	Conditions *EndpointConditions `json:"conditions,omitempty"`
	Hostname   *string             `json:"hostname,omitempty"`
	NodeName   *string             `json:"nodeName,omitempty"`
	Zone       *string             `json:"zone,omitempty"`
}

// SlicePort is discovery/v1 EndpointPort. A nil Name is stored as "".
type SlicePort struct {
	Name        *string `json:"name,omitempty"`
	Port        *int32  `json:"port,omitempty"`
	Protocol    *string `json:"protocol,omitempty"`
	AppProtocol *string `json:"appProtocol,omitempty"`
}

// EndpointSlice describes a discovery.k8s.io/v1 EndpointSlice to apply.
type EndpointSlice struct {
	Name        string
	Service     string            // sets label kubernetes.io/service-name
	Labels      map[string]string // more labels
	AddressType string            // IPv4 (default), IPv6 or FQDN
	Endpoints   []SliceEndpoint
	Ports       []SlicePort
}

// Ptr returns a pointer to v (for the optional fields above).
func Ptr[T any](v T) *T { return &v }

// Port is a named SlicePort (name "" for unnamed) with protocol TCP.
func Port(name string, port int32) SlicePort {
	return SlicePort{Name: &name, Port: &port, Protocol: Ptr("TCP")}
}

// ApplyEndpointSlice creates or replaces the EndpointSlice ns/s.Name and
// returns the stored object.
func (a *APIServer) ApplyEndpointSlice(ctx context.Context, ns string, s EndpointSlice) ([]byte, error) {
	labels := map[string]string{}
	for k, v := range s.Labels {
		labels[k] = v
	}
	if s.Service != "" {
		labels["kubernetes.io/service-name"] = s.Service
	}
	if s.AddressType == "" {
		s.AddressType = "IPv4"
	}
	eps := s.Endpoints
	if eps == nil {
		eps = []SliceEndpoint{}
	}
	meta := map[string]any{"name": s.Name, "namespace": ns}
	if len(labels) > 0 {
		meta["labels"] = labels
	}
	obj := map[string]any{
		"apiVersion":  "discovery.k8s.io/v1",
		"kind":        "EndpointSlice",
		"metadata":    meta,
		"addressType": s.AddressType,
		"endpoints":   eps,
	}
	if s.Ports != nil {
		obj["ports"] = s.Ports
	}
	return a.Apply(ctx, obj)
}

// DeleteEndpointSlice deletes the EndpointSlice ns/name (absent is fine).
func (a *APIServer) DeleteEndpointSlice(ctx context.Context, ns, name string) error {
	return a.Delete(ctx, "/apis/discovery.k8s.io/v1/namespaces/"+ns+"/endpointslices/"+name)
}

// ---- RBAC and service accounts ----

// DiscoveryClusterRole is the ClusterRole rbac.yaml defines: get, list and
// watch on endpoints ("") and endpointslices (discovery.k8s.io).
const DiscoveryClusterRole = "kdisc-discovery"

func grantName(user string) string { return "kdisc-discovery-user-" + user }

// GrantDiscovery binds user to the kdisc-discovery ClusterRole (binding
// "kdisc-discovery-user-<user>") and waits until the apiserver authorizes
// the user to list endpoints and endpointslices.
func (a *APIServer) GrantDiscovery(ctx context.Context, user string) error {
	_, err := a.Apply(ctx, map[string]any{
		"apiVersion": "rbac.authorization.k8s.io/v1",
		"kind":       "ClusterRoleBinding",
		"metadata":   map[string]any{"name": grantName(user)},
		"roleRef": map[string]any{
			"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": DiscoveryClusterRole,
		},
		"subjects": []any{map[string]any{
			"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user,
		}},
	})
	if err != nil {
		return err
	}
	return a.waitAllowed(ctx, user, true)
}

// RevokeDiscovery deletes the binding GrantDiscovery made (for "discovery",
// the one rbac.yaml made) and waits until the user is refused.
func (a *APIServer) RevokeDiscovery(ctx context.Context, user string) error {
	if err := a.Delete(ctx, "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/"+grantName(user)); err != nil {
		return err
	}
	return a.waitAllowed(ctx, user, false)
}

// CanDiscover asks the apiserver (SubjectAccessReview) whether user may
// list and watch endpoints and endpointslices in every namespace.
func (a *APIServer) CanDiscover(ctx context.Context, user string) (bool, error) {
	for _, ra := range []map[string]any{
		{"verb": "list", "group": "", "resource": "endpoints"},
		{"verb": "watch", "group": "", "resource": "endpoints"},
		{"verb": "list", "group": "discovery.k8s.io", "resource": "endpointslices"},
		{"verb": "watch", "group": "discovery.k8s.io", "resource": "endpointslices"},
	} {
		b, err := a.call(ctx, http.MethodPost, "/apis/authorization.k8s.io/v1/subjectaccessreviews", map[string]any{
			"apiVersion": "authorization.k8s.io/v1",
			"kind":       "SubjectAccessReview",
			"spec":       map[string]any{"user": user, "groups": []string{"system:authenticated"}, "resourceAttributes": ra},
		})
		if err != nil {
			return false, err
		}
		var r struct {
			Status struct {
				Allowed bool `json:"allowed"`
			} `json:"status"`
		}
		if err := json.Unmarshal(b, &r); err != nil {
			return false, err
		}
		if !r.Status.Allowed {
			return false, nil
		}
	}
	return true, nil
}

// waitAllowed polls until CanDiscover(user) == want: RBAC changes reach the
// authorizer through an informer, a little after the write.
func (a *APIServer) waitAllowed(ctx context.Context, user string, want bool) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, err := a.CanDiscover(ctx, user)
		if err == nil && ok == want {
			return nil
		}
		if werr := pollWait(ctx, deadline, 50*time.Millisecond); werr != nil {
			return fmt.Errorf("kubetest: waiting for %q allowed=%v: %w (last error: %v)", user, want, werr, err)
		}
	}
}

// applyRBAC applies rbac.yaml and waits until it is in force.
func (a *APIServer) applyRBAC(ctx context.Context, manifest []byte) error {
	if err := a.ApplyYAML(ctx, manifest); err != nil {
		return err
	}
	return a.waitAllowed(ctx, UserDiscovery, true)
}

// ServiceAccountToken returns a token for the ServiceAccount ns/name from
// the TokenRequest API, valid for ttl (at least 10 minutes). rbac.yaml
// creates ServiceAccount kdisc/kdisc with the discovery ClusterRole.
func (a *APIServer) ServiceAccountToken(ctx context.Context, ns, name string, ttl time.Duration) (string, error) {
	if ttl < 10*time.Minute {
		ttl = 10 * time.Minute
	}
	b, err := a.call(ctx, http.MethodPost, "/api/v1/namespaces/"+ns+"/serviceaccounts/"+name+"/token", map[string]any{
		"apiVersion": "authentication.k8s.io/v1",
		"kind":       "TokenRequest",
		"spec":       map[string]any{"expirationSeconds": int64(ttl / time.Second)},
	})
	if err != nil {
		return "", err
	}
	var r struct {
		Status struct {
			Token string `json:"token"`
		} `json:"status"`
	}
	if err := json.Unmarshal(b, &r); err != nil || r.Status.Token == "" {
		return "", fmt.Errorf("kubetest: TokenRequest: no token in %s", b)
	}
	return r.Status.Token, nil
}
