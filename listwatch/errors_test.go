package listwatch

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"syscall"
	"testing"
	"time"

	jsoniter "github.com/json-iterator/go"
	"github.com/stretchr/testify/assert"

	"github.com/kdisc/kdisc/apiserver"
)

// eventStatus decodes an ERROR event's object as the loop does.
func eventStatus(t *testing.T, e Event) *WatchEventError {
	t.Helper()
	se := &apiserver.StatusError{}
	it := jsoniter.ParseBytes(jsoniter.ConfigDefault, e.Object)
	se.Code = apiserver.ReadStatus(it, se)
	return &WatchEventError{Status: se}
}

func TestClassify(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("watch endpoints: %w", err) }
	for _, c := range []struct {
		name  string
		err   error
		class ErrorClass
		level slog.Level
	}{
		{"nil", nil, ClassNone, slog.LevelWarn},
		{"410 on a continue token", statusErr(410, "Expired", "The provided continue parameter is too old"), ClassExpired, slog.LevelInfo},
		{"410 ERROR event", wrap(eventStatus(t, errorEvent(410, "Expired", "too old resource version: 229 (236)", ""))), ClassExpired, slog.LevelInfo},
		{"504 too large resourceVersion", &apiserver.StatusError{Code: 504, Reason: "Timeout", Message: "Timeout: Too large resource version: 12, current: 9", Causes: []string{"ResourceVersionTooLarge"}}, ClassTooLargeResourceVersion, slog.LevelWarn},
		{"too large, old server without cause", statusErr(504, "Timeout", "Timeout: Too large resource version: 12, current: 9"), ClassTooLargeResourceVersion, slog.LevelWarn},
		{"too large as an ERROR event", wrap(eventStatus(t, errorEvent(504, "Timeout", "Too large resource version", `{"causes":[{"reason":"ResourceVersionTooLarge","message":"Too large resource version"}],"retryAfterSeconds":1}`))), ClassTooLargeResourceVersion, slog.LevelWarn},
		{"500 ERROR event", wrap(eventStatus(t, errorEvent(500, "InternalError", "etcdserver: request timed out", ""))), ClassWatchError, slog.LevelWarn},
		{"429 ERROR event", wrap(eventStatus(t, errorEvent(429, "TooManyRequests", "slow down", ""))), ClassWatchError, slog.LevelWarn},
		{"very short watch", wrap(errVeryShortWatch), ClassVeryShortWatch, slog.LevelWarn},
		{"401", statusErr(401, "Unauthorized", "Unauthorized"), ClassUnauthorized, slog.LevelError},
		{"403", statusErr(403, "Forbidden", `endpoints is forbidden: User "x" cannot list resource "endpoints"`), ClassForbidden, slog.LevelError},
		{"403 ERROR event", wrap(eventStatus(t, errorEvent(403, "Forbidden", "no", ""))), ClassForbidden, slog.LevelError},
		{"400 label selector", statusErr(400, "BadRequest", "unable to parse requirement"), ClassBadRequest, slog.LevelError},
		{"404 no such API", statusErr(404, "NotFound", "the server could not find the requested resource"), ClassBadRequest, slog.LevelError},
		{"429", &apiserver.StatusError{Code: 429, Reason: "TooManyRequests", RetryAfter: time.Second}, ClassThrottled, slog.LevelWarn},
		{"500", statusErr(500, "InternalError", "etcdserver: request timed out"), ClassServerError, slog.LevelWarn},
		{"503", statusErr(503, "ServiceUnavailable", ""), ClassServerError, slog.LevelWarn},
		{"stalled list", wrap(&IdleError{Op: "list", Idle: 30 * time.Second}), ClassStalled, slog.LevelWarn},
		{"silent watch", wrap(&IdleError{Op: "watch", Idle: 150 * time.Second}), ClassStalled, slog.LevelWarn},
		{"connection refused", wrap(&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}), ClassTransport, slog.LevelWarn},
		{"cut mid-event", wrap(io.ErrUnexpectedEOF), ClassTransport, slog.LevelWarn},
		{"header timeout", wrap(context.DeadlineExceeded), ClassTransport, slog.LevelWarn},
		{"TLS", wrap(&x509.UnknownAuthorityError{}), ClassTransport, slog.LevelWarn},
		{"garbled stream", wrap(errors.New("watch stream: unexpected data")), ClassTransport, slog.LevelWarn},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := Classify(c.err)
			assert.Equal(t, c.class, got)
			if c.err != nil {
				assert.Equal(t, c.level, got.level())
			}
			assert.Equal(t, got == ClassExpired || got == ClassTooLargeResourceVersion, got.Relist())
		})
	}
}

func TestErrorEventDetails(t *testing.T) {
	e := eventStatus(t, errorEvent(500, "InternalError", "x", `{"retryAfterSeconds":7,"causes":[{"reason":"A"},{"message":"no reason"}]}`))
	assert.Equal(t, 7*time.Second, e.Status.RetryAfter)
	assert.Equal(t, []string{"A"}, e.Status.Causes)
	assert.Equal(t, 7*time.Second, apiserver.RetryAfter(fmt.Errorf("x: %w", e)))
}

func TestDescribeTellsTheOperatorToAct(t *testing.T) {
	forbidden := statusErr(403, "Forbidden", `endpoints is forbidden: User "system:serviceaccount:kdisc:kdisc" cannot list resource "endpoints"`)
	s := describe(ClassForbidden, "endpoints", forbidden)
	assert.Contains(t, s, "forbidden: an operator must")
	assert.Contains(t, s, "403 Forbidden from apiserver")
	assert.Contains(t, s, "cannot list resource")
	s = describe(ClassUnauthorized, "endpoints", statusErr(401, "Unauthorized", "Unauthorized"))
	assert.Contains(t, s, "unauthorized: an operator must")
	assert.Contains(t, s, "401 Unauthorized from apiserver")
}
