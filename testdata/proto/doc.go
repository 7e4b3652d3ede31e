// Package proto holds the tests that hold kdisc's hand-written protobuf
// (the decoder of listwatch, the test encoder of internal/fakeapi) to
// k8s.io/api's generated code. It is a module of its own, so that
// k8s.io/api is a dependency of these tests only, never of kdisc.
//
//	cd testdata/proto && go test ./...
//	cd testdata/proto && go test -fuzz FuzzDecoderAgreesWithGenerated
package proto
