package fakeapi

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// Status is metav1.Status, the body of every error the real server sends
// (and the object of a watch ERROR event).
type Status struct {
	Kind       string         `json:"kind"`
	APIVersion string         `json:"apiVersion"`
	Metadata   StatusMeta     `json:"metadata"`
	Status     string         `json:"status"`
	Message    string         `json:"message"`
	Reason     string         `json:"reason,omitempty"`
	Details    *StatusDetails `json:"details,omitempty"`
	Code       int            `json:"code"`
}

// StatusMeta is the Status's ListMeta: an expired continue token's 410
// carries a fresh token here that continues from the latest revision.
type StatusMeta struct {
	Continue string `json:"continue,omitempty"`
}

// StatusDetails is metav1.StatusDetails.
type StatusDetails struct {
	Name              string        `json:"name,omitempty"`
	Group             string        `json:"group,omitempty"`
	Kind              string        `json:"kind,omitempty"`
	Causes            []StatusCause `json:"causes,omitempty"`
	RetryAfterSeconds int           `json:"retryAfterSeconds,omitempty"`
}

// StatusCause is metav1.StatusCause.
type StatusCause struct {
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
	Field   string `json:"field,omitempty"`
}

func newStatus(code int, reason, msg string) *Status {
	return &Status{Kind: "Status", APIVersion: "v1", Status: "Failure", Message: msg, Reason: reason, Code: code}
}

// writeStatus answers with a Status body, with Retry-After when the status
// asks the client to come back later (as APF's 429 does).
func writeStatus(w http.ResponseWriter, st *Status) {
	b, _ := json.Marshal(st)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if isProto(w) {
		b = protoStatus(st)
		h.Set("Content-Type", mediaProtobuf)
	}
	if st.Details != nil && st.Details.RetryAfterSeconds > 0 {
		h.Set("Retry-After", strconv.Itoa(st.Details.RetryAfterSeconds))
	}
	w.WriteHeader(st.Code)
	_, _ = w.Write(b)
	if !isProto(w) {
		_, _ = w.Write([]byte("\n"))
	}
}

func badRequest(msg string) *Status {
	return newStatus(http.StatusBadRequest, "BadRequest", msg)
}

// tooOldStatus is the 410 a watch from a compacted revision gets.
func tooOldStatus(from, compacted uint64) *Status {
	return newStatus(http.StatusGone, "Expired",
		"too old resource version: "+formatRV(from)+" ("+formatRV(compacted)+")")
}

// tooLargeStatus is the 504 for a resourceVersion the server has not
// reached yet (the real one waits up to 3 s first).
func tooLargeStatus(from, current uint64) *Status {
	st := newStatus(http.StatusGatewayTimeout, "Timeout",
		"Timeout: Too large resource version: "+formatRV(from)+", current: "+formatRV(current))
	st.Details = &StatusDetails{
		Causes:            []StatusCause{{Reason: "ResourceVersionTooLarge", Message: "Too large resource version"}},
		RetryAfterSeconds: 1,
	}
	return st
}

const continueTooOld = "The provided continue parameter is too old to display a consistent list result. " +
	"You can start a new list without the continue parameter, or use the continue token in this response " +
	"to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent " +
	"list - objects that were created, modified, or deleted between the time the first chunk was returned " +
	"and now may show up in the list."
