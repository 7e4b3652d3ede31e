package fakeapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// continueToken is what the real server's continue parameter holds:
// base64 of {"v":"meta.k8s.io/v1","rv":N,"start":"key\u0000"}, the key
// relative to the listed prefix ("name" in a namespaced list,
// "namespace/name" cluster-wide). rv -1 means "continue at the latest
// revision", the form of the token a 410 hands back.
type continueToken struct {
	V     string `json:"v"`
	RV    int64  `json:"rv"`
	Start string `json:"start"`
}

func encodeContinue(t continueToken) string {
	t.V = "meta.k8s.io/v1"
	b, _ := json.Marshal(t)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeContinue(s string) (continueToken, bool) {
	var t continueToken
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || json.Unmarshal(b, &t) != nil || t.V != "meta.k8s.io/v1" {
		return t, false
	}
	return t, true
}

// listMeta is metav1.ListMeta in its wire order.
type listMeta struct {
	ResourceVersion    string `json:"resourceVersion"`
	Continue           string `json:"continue,omitempty"`
	RemainingItemCount *int64 `json:"remainingItemCount,omitempty"`
}

// listPage is a computed LIST answer.
type listPage struct {
	meta  listMeta
	items [][]byte
}

// list computes one page. Pagination reads at the revision of the first
// page, like etcd: later pages do not see changes made in between.
func (s *store) list(res *resource, q map[string][]string, f *filter) (*listPage, *Status) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	limit := int64(0)
	if v := get("limit"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, badRequest("invalid limit: " + v)
		}
		limit = max(n, 0)
	}
	rvParam, cont := get("resourceVersion"), get("continue")

	s.mu.Lock()
	defer s.mu.Unlock()
	at, start := s.rv, ""
	prefix := "" // etcd keys are relative to the listed prefix
	if f.namespace != "" {
		prefix = f.namespace + "/"
	}
	switch {
	case cont != "":
		if rvParam != "" && rvParam != "0" {
			return nil, badRequest("specifying resource version is not allowed when using continue")
		}
		tok, ok := decodeContinue(cont)
		if !ok {
			return nil, badRequest("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
		}
		start = prefix + tok.Start
		if tok.RV >= 0 {
			if uint64(tok.RV) < max(s.compacted, s.tokensFrom) {
				st := newStatus(http.StatusGone, "Expired", continueTooOld)
				st.Metadata.Continue = encodeContinue(continueToken{RV: -1, Start: tok.Start})
				return nil, st
			}
			at = uint64(tok.RV)
		}
	case get("resourceVersionMatch") == "Exact":
		rv, err := strconv.ParseUint(rvParam, 10, 64)
		if err != nil {
			return nil, badRequest("invalid resource version: " + rvParam)
		}
		if rv < s.compacted {
			return nil, tooOldStatus(rv, s.compacted)
		}
		if rv > s.rv {
			return nil, tooLargeStatus(rv, s.rv)
		}
		at = rv
	}

	page := &listPage{meta: listMeta{ResourceVersion: formatRV(at)}}
	if cont != "" && f.namespace == "" && f.namespaceEqual() {
		// kube-apiserver v1.37.2's trap: a cluster-wide LIST with
		// fieldSelector=metadata.namespace=X pages its first page and
		// answers every continuation with 0 items and no continue token
		// (captured: testdata/kube/captured/list-namespace-field-selector-*.json).
		return page, nil
	}
	all := s.snapshotLocked(res, at)
	var matched []*stored
	for _, o := range all {
		if o.key() > start || start == "" {
			if f.matches(o) {
				matched = append(matched, o)
			}
		}
	}
	if limit > 0 && int64(len(matched)) > limit {
		last := matched[limit-1]
		page.meta.Continue = encodeContinue(continueToken{RV: int64(at), Start: strings.TrimPrefix(last.key(), prefix) + "\x00"})
		if f.empty() {
			n := int64(len(matched)) - limit
			page.meta.RemainingItemCount = &n
		}
		matched = matched[:limit]
	}
	for _, o := range matched {
		page.items = append(page.items, o.item)
	}
	return page, nil
}

// body renders the page exactly as the real server does: kind and
// apiVersion on the list, none on the items, "items":[] when empty.
func (p *listPage) body(res *resource) []byte {
	var b bytes.Buffer
	meta, _ := json.Marshal(p.meta)
	b.WriteString(`{"kind":"` + res.kind + `List","apiVersion":"` + res.apiVersion + `","metadata":`)
	b.Write(meta)
	b.WriteString(`,"items":[`)
	for i, it := range p.items {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(it)
	}
	b.WriteString("]}\n")
	return b.Bytes()
}

// protoBody is body in protobuf: the envelope around the List message.
// The malformed item of faultMalformed is replaced by its protobuf form.
func (p *listPage) protoBody(res *resource, malformed bool, ns string) []byte {
	items := make([][]byte, len(p.items))
	for i, it := range p.items {
		if malformed && bytes.Contains(it, []byte(`"name":"malformed"`)) {
			rv, _ := strconv.ParseUint(p.meta.ResourceVersion, 10, 64)
			items[i] = malformedProto(res, ns, rv)
			continue
		}
		items[i] = protoMessage(res, it)
	}
	return EnvelopeProto(res.apiVersion, res.kind+"List", MarshalListProto(p.meta.ResourceVersion, p.meta.Continue, items))
}

// serveList answers LIST, with the faults that need the handler.
func (s *Server) serveList(w http.ResponseWriter, r *http.Request, req Request, res *resource, f *filter, fault Fault) {
	page, st := s.store.list(res, r.URL.Query(), f)
	if st != nil {
		writeStatus(w, st)
		return
	}
	if fault.kind == faultMalformed {
		rv, _ := strconv.ParseUint(page.meta.ResourceVersion, 10, 64)
		bad := malformedItem(res, req.Namespace, rv, false)
		i := 0
		if len(page.items) > 0 {
			i = int((rv + uint64(req.Seq)) % uint64(len(page.items)+1))
		}
		page.items = append(page.items[:i], append([][]byte{bad}, page.items[i:]...)...)
	}
	body := page.body(res)
	w.Header().Set("Content-Type", "application/json")
	if isProto(w) {
		body = page.protoBody(res, fault.kind == faultMalformed, req.Namespace)
		w.Header().Set("Content-Type", mediaProtobuf)
	}
	w.WriteHeader(http.StatusOK)
	sw := newSplitWriter(w, s.seed, uint64(req.Seq))
	if fault.kind == faultStall && !s.stall(w, r, fault) {
		return
	}
	if fault.kind == faultDrop {
		_ = sw.half(body)
		s.hangUp(w)
		return
	}
	_ = sw.write(body)
}

// serveGet answers GET of one object.
func (s *Server) serveGet(w http.ResponseWriter, req Request, res *resource) {
	o := s.store.get(res, req.Namespace, req.Name)
	if o == nil {
		st := newStatus(http.StatusNotFound, "NotFound", res.groupResource()+` "`+req.Name+`" not found`)
		st.Details = &StatusDetails{Name: req.Name, Group: res.group, Kind: res.name}
		writeStatus(w, st)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(o.full, '\n'))
}
