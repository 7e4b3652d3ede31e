// Package apiserver pins the dependencies used to build a real
// kube-apiserver for kdisc's end-to-end tests (see ../build.sh). The binary
// is declared with the go.mod "tool" directive; this module has no code of
// its own.
package apiserver
