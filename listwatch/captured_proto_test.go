package listwatch

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kdisc/kdisc/apiserver"
	"github.com/kdisc/kdisc/listwatch/services"
)

// Captured answers of the real kube-apiserver v1.37.2 in protobuf
// (testdata/kube/captured/*.pb, see internal/kubetest/proto_e2e_test.go)
// decode to what its JSON answers for the same objects decode to.
func TestCapturedProtobufAnswers(t *testing.T) {
	dir := "../testdata/kube/captured"
	for _, kind := range []string{"endpoints", "endpointslices"} {
		isSlice := kind == "endpointslices"
		read := func(name string) []byte {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		summarize := func(raw []byte, proto bool) string {
			s, err := readObject(Options{EndpointSlices: isSlice, NodeDetail: true, Weight: 1}, "ADDED", raw, proto)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		var fromJSON, fromProto []string
		pageJ, err := readList(bytes.NewReader(read(kind+"-list-pb.json")), func(raw []byte) { fromJSON = append(fromJSON, summarize(raw, false)) })
		if err != nil {
			t.Fatal(err)
		}
		pageP, err := readProtoList(bytes.NewReader(read(kind+"-list.pb")), func(raw []byte) { fromProto = append(fromProto, summarize(raw, true)) })
		if err != nil {
			t.Fatal(err)
		}
		if len(fromProto) == 0 || !slices.Equal(fromJSON, fromProto) || pageJ.resourceVersion != pageP.resourceVersion {
			t.Fatalf("%s list: JSON %q rv %s\nprotobuf %q rv %s", kind, fromJSON, pageJ.resourceVersion, fromProto, pageP.resourceVersion)
		}
		er := newProtoEventReader(bytes.NewReader(read(kind + "-watch.pb")))
		var types []string
		for {
			var ev Event
			err := er.next(&ev)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			types = append(types, ev.Type)
			switch ev.Type {
			case "BOOKMARK":
				if _, end, err := services.ReadBookmark(ev.Object, ev.Proto); err != nil || !end {
					t.Fatalf("%s: the streaming list's bookmark: end %v %v", kind, end, err)
				}
			default:
				if s := summarize(ev.Object, ev.Proto); s == "" || strings.HasPrefix(s, "malformed") {
					t.Fatalf("%s %s event: %q", kind, ev.Type, s)
				}
			}
		}
		if !slices.Contains(types, "BOOKMARK") || !slices.Contains(types, "ADDED") || !slices.Contains(types, "MODIFIED") {
			t.Fatalf("%s watch: events %q", kind, types)
		}
	}
	// A Status: the same as the JSON one the apiserver sent for the
	// same mistake.
	var fromProto, fromJSON apiserver.StatusError
	st, err := os.ReadFile(filepath.Join(dir, "status-400-label-selector.pb"))
	if err != nil {
		t.Fatal(err)
	}
	js, err := os.ReadFile(filepath.Join(dir, "status-400-label-selector.json"))
	if err != nil {
		t.Fatal(err)
	}
	codeP, codeJ := readEventStatus(st, &fromProto), readEventStatus(js, &fromJSON)
	// (The JSON capture's selector was app="web", this one's first="a".)
	same := strings.Replace(fromProto.Message, `[first]: Invalid value: "\"a\""`, `[app]: Invalid value: "\"web\""`, 1)
	if codeP != 400 || codeP != codeJ || fromProto.Reason != fromJSON.Reason || same != fromJSON.Message {
		t.Fatalf("captured 400: protobuf %d %+v, JSON %d %+v", codeP, fromProto, codeJ, fromJSON)
	}
}
