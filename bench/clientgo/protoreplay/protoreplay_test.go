package protoreplay

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/streaming"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	restwatch "k8s.io/client-go/rest/watch"

	"github.com/kdisc/kdisc/internal/replay"
)

func serve(t *testing.T, slices bool) (*replay.Server, string) {
	t.Helper()
	s := replay.New(replay.Options{Services: 30, Events: 40, Slices: slices})
	require.NoError(t, s.WithProtobuf(Marshal))
	hs := httptest.NewServer(s)
	t.Cleanup(func() { s.Close(); hs.Close() })
	return s, hs.URL + s.Path()
}

func get(t *testing.T, url, accept string) (body []byte, contentType string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	body, err = io.ReadAll(resp.Body)
	require.NoError(t, err)
	return body, resp.Header.Get("Content-Type")
}

func info(t *testing.T, mediaType string) runtime.SerializerInfo {
	i, ok := runtime.SerializerInfoForMediaType(scheme.Codecs.SupportedMediaTypes(), mediaType)
	require.True(t, ok, mediaType)
	return i
}

// A protobuf LIST page is, byte for byte, what apimachinery's protobuf
// serializer (kube-apiserver's) writes for the list the JSON page holds.
func TestListIsWhatKubeAPIServerWrites(t *testing.T) {
	for _, c := range []struct {
		slices bool
		gv     schema.GroupVersion
	}{{false, corev1.SchemeGroupVersion}, {true, discoveryv1.SchemeGroupVersion}} {
		_, url := serve(t, c.slices)
		for _, page := range []string{"?limit=10", "?limit=10&continue=cmVwbGF510", ""} {
			jsonBody, ct := get(t, url+page, "")
			require.Equal(t, "application/json", ct)
			pbBody, ct := get(t, url+page, "application/vnd.kubernetes.protobuf, */*")
			require.Equal(t, replay.ContentTypeProtobuf, ct)

			want, _, err := info(t, "application/json").Serializer.Decode(jsonBody, nil, nil)
			require.NoError(t, err)
			var encoded bytes.Buffer
			pb := info(t, replay.ContentTypeProtobuf).Serializer
			require.NoError(t, scheme.Codecs.EncoderForVersion(pb, c.gv).Encode(want, &encoded))
			assert.Equal(t, encoded.Bytes(), pbBody, "slices %v, page %q", c.slices, page)

			got, _, err := pb.Decode(pbBody, nil, nil)
			require.NoError(t, err)
			// JSON items carry their kind and apiVersion, protobuf items do not.
			assert.Equal(t, withoutItemKinds(t, want), withoutItemKinds(t, got))
		}
	}
}

func withoutItemKinds(t *testing.T, list runtime.Object) runtime.Object {
	items, err := meta.ExtractList(list)
	require.NoError(t, err)
	for _, o := range items {
		o.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{})
	}
	require.NoError(t, meta.SetList(list, items))
	return list
}

func events(t *testing.T, body []byte, mediaType string) []watch.Event {
	t.Helper()
	i := info(t, mediaType)
	frames := i.StreamSerializer.Framer.NewFrameReader(io.NopCloser(bytes.NewReader(body)))
	d := restwatch.NewDecoder(streaming.NewDecoder(frames, i.StreamSerializer.Serializer), scheme.Codecs.UniversalDeserializer())
	var out []watch.Event
	for {
		typ, obj, err := d.Decode()
		if err != nil {
			return out
		}
		out = append(out, watch.Event{Type: typ, Object: obj})
	}
}

// A protobuf streaming list and watch, read by client-go's own stream
// decoder, hold the same events as the JSON ones: the initial ADDED events,
// the initial-events-end bookmark, the replay and the sentinel.
func TestWatchStreamDecodesAsJSONDoes(t *testing.T) {
	for _, slices := range []bool{false, true} {
		_, url := serve(t, slices)
		for q, n := range map[string]int{
			"?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1": 30 + 1 + 41,
			"?watch=1&resourceVersion=30&timeoutSeconds=1":                                                                41,
		} {
			jsonBody, _ := get(t, url+q, "application/json")
			pbBody, ct := get(t, url+q, "application/vnd.kubernetes.protobuf")
			assert.Equal(t, replay.ContentTypeProtobuf+";stream=watch", ct)
			want := events(t, jsonBody, "application/json")
			got := events(t, pbBody, replay.ContentTypeProtobuf)
			require.Len(t, want, n, q)
			require.Len(t, got, len(want))
			for k := range want {
				// JSON carries the kind and apiVersion in the object,
				// protobuf in the envelope; the decoders differ in which they fill.
				w, g := want[k].Object, got[k].Object
				w.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{})
				g.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{})
				assert.Equal(t, want[k].Type, got[k].Type, "event %d", k)
				assert.Equal(t, w, g, "event %d", k)
			}
		}
	}
}

func TestAcceptNegotiation(t *testing.T) {
	_, url := serve(t, false)
	for accept, want := range map[string]string{
		"":                                    "application/json",
		"application/json":                    "application/json",
		"*/*":                                 "application/json",
		"application/vnd.kubernetes.protobuf": replay.ContentTypeProtobuf,
		"application/vnd.kubernetes.protobuf, application/json":       replay.ContentTypeProtobuf,
		"application/json, application/vnd.kubernetes.protobuf":       "application/json",
		"application/json;q=0.5, application/vnd.kubernetes.protobuf": replay.ContentTypeProtobuf,
	} {
		_, ct := get(t, url+"?limit=1", accept)
		assert.Equal(t, want, ct, "Accept: %q", accept)
	}
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Accept", "application/yaml")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotAcceptable, resp.StatusCode)
}

// client-go configured as kube-proxy configures it (ContentType protobuf)
// syncs an informer from the replay in protobuf and sees the sentinel.
func TestInformerSyncsInProtobuf(t *testing.T) {
	s, url := serve(t, true)
	cs, err := kubernetes.NewForConfig(&rest.Config{Host: url[:len(url)-len(s.Path())], ContentConfig: rest.ContentConfig{ContentType: replay.ContentTypeProtobuf}, QPS: -1})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f := informers.NewSharedInformerFactory(cs, 0)
	l := f.Discovery().V1().EndpointSlices()
	inf := l.Informer()
	f.Start(ctx.Done())
	defer f.Shutdown()
	defer cancel()
	require.Eventually(t, func() bool {
		_, err := l.Lister().EndpointSlices(replay.SentinelNamespace).Get(replay.SentinelName + "-x7k2p")
		return inf.HasSynced() && err == nil
	}, time.Minute, time.Millisecond)
	_, _, _, pb := s.Stats()
	assert.Positive(t, pb, "answered in protobuf")
}
