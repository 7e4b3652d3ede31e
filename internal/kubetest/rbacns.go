package kubetest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// NamespaceRBACFile is the namespaced Role + RoleBinding template, relative
// to the repository root.
const NamespaceRBACFile = "testdata/kube/rbac-namespace.yaml"

// NamespaceRBAC returns testdata/kube/rbac-namespace.yaml for user in
// namespace ns: a Role "kdisc-discovery" (get, list, watch on endpoints
// and discovery.k8s.io endpointslices) and a RoleBinding of user to it.
func NamespaceRBAC(ns, user string) ([]byte, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(root, NamespaceRBACFile))
	if err != nil {
		return nil, fmt.Errorf("kubetest: %w", err)
	}
	s := strings.NewReplacer("${NAMESPACE}", ns, "${USER}", user).Replace(string(b))
	return []byte(s), nil
}

// GrantNamespaceDiscovery applies rbac-namespace.yaml for user in ns and
// waits until the apiserver lets user list and watch endpoints and
// endpointslices in ns. It grants nothing outside ns.
func (a *APIServer) GrantNamespaceDiscovery(ctx context.Context, ns, user string) error {
	manifest, err := NamespaceRBAC(ns, user)
	if err != nil {
		return err
	}
	if err := a.ApplyYAML(ctx, manifest); err != nil {
		return err
	}
	return a.waitAllowedIn(ctx, ns, user, true)
}

// RevokeNamespaceDiscovery deletes the RoleBinding GrantNamespaceDiscovery
// made and waits until user is refused in ns.
func (a *APIServer) RevokeNamespaceDiscovery(ctx context.Context, ns, user string) error {
	if err := a.Delete(ctx, "/apis/rbac.authorization.k8s.io/v1/namespaces/"+ns+"/rolebindings/"+grantName(user)); err != nil {
		return err
	}
	return a.waitAllowedIn(ctx, ns, user, false)
}

// CanDiscoverIn asks the apiserver (SubjectAccessReview) whether user may
// list and watch endpoints and endpointslices in namespace ns ("" = in
// every namespace, as CanDiscover).
func (a *APIServer) CanDiscoverIn(ctx context.Context, ns, user string) (bool, error) {
	for _, ra := range []map[string]any{
		{"verb": "list", "group": "", "resource": "endpoints"},
		{"verb": "watch", "group": "", "resource": "endpoints"},
		{"verb": "list", "group": "discovery.k8s.io", "resource": "endpointslices"},
		{"verb": "watch", "group": "discovery.k8s.io", "resource": "endpointslices"},
	} {
		if ns != "" {
			ra["namespace"] = ns
		}
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

func (a *APIServer) waitAllowedIn(ctx context.Context, ns, user string, want bool) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, err := a.CanDiscoverIn(ctx, ns, user)
		if err == nil && ok == want {
			return nil
		}
		if werr := pollWait(ctx, deadline, 50*time.Millisecond); werr != nil {
			return fmt.Errorf("kubetest: waiting for %q allowed=%v in %q: %w (last error: %v)", user, want, ns, werr, err)
		}
	}
}
