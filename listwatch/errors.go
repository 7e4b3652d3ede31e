package listwatch

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	jsoniter "github.com/json-iterator/go"

	"github.com/kdisc/kdisc/apiserver"
	"github.com/kdisc/kdisc/internal/protowire"
)

// This file is the one place that decides what a failure means, how the
// loop answers it and how loudly it is logged, as client-go's reflector
// does with isExpiredError, isTooLargeResourceVersionError,
// isWatchErrorRetriable, VeryShortWatchError and DefaultWatchErrorHandler.
//
//	class                        what                                    the loop
//	expired                      410 Gone: resourceVersion or continue   lists again (at once)
//	                             token too old
//	too_large_resource_version   the server is behind kdisc's            backs off, lists again
//	                             resourceVersion (504, cause
//	                             ResourceVersionTooLarge)
//	watch_error                  a watch ERROR event other than the      backs off, resumes the watch
//	                             above (the stream had opened: 200)
//	very_short_watch             a watch ended cleanly at once with      backs off, resumes the watch
//	                             no event
//	unauthorized, forbidden      401, 403: an operator must act          backs off; logged at Error
//	                             (credentials, RBAC)
//	bad_request                  other 4xx (a selector the server        backs off; logged at Error
//	                             refuses, a missing API)
//	throttled                    429 (API Priority and Fairness)         backs off, honours Retry-After
//	server_error                 5xx                                     backs off, honours Retry-After
//	stalled                      nothing received for the idle timeout   backs off, retries
//	transport                    no answer: refused, reset, TLS, DNS,    backs off, retries
//	                             a stream cut mid-event
//
// Every backoff honours the server's Retry-After (header, or an ERROR
// event's details.retryAfterSeconds), capped at 30 s.

// ErrorClass names what kind of failure the loop met last; "" when none.
type ErrorClass string

const (
	ClassNone                    ErrorClass = ""
	ClassExpired                 ErrorClass = "expired"
	ClassTooLargeResourceVersion ErrorClass = "too_large_resource_version"
	ClassWatchError              ErrorClass = "watch_error"
	ClassVeryShortWatch          ErrorClass = "very_short_watch"
	ClassUnauthorized            ErrorClass = "unauthorized"
	ClassForbidden               ErrorClass = "forbidden"
	ClassBadRequest              ErrorClass = "bad_request"
	ClassThrottled               ErrorClass = "throttled"
	ClassServerError             ErrorClass = "server_error"
	ClassStalled                 ErrorClass = "stalled"
	ClassTransport               ErrorClass = "transport"
)

// Relist reports whether the loop must list again: its resourceVersion
// is of no use to this server.
func (c ErrorClass) Relist() bool {
	return c == ClassExpired || c == ClassTooLargeResourceVersion
}

// OperatorMustAct reports whether retrying alone cannot fix it.
func (c ErrorClass) OperatorMustAct() bool {
	return c == ClassUnauthorized || c == ClassForbidden || c == ClassBadRequest
}

// level is how loudly a failure of the class is logged.
func (c ErrorClass) level() slog.Level {
	switch {
	case c == ClassExpired:
		return slog.LevelInfo
	case c.OperatorMustAct():
		return slog.LevelError
	}
	return slog.LevelWarn
}

// WatchEventError is a watch ERROR event: the apiserver answered 200 and
// then reported a failure inside the stream.
type WatchEventError struct{ Status *apiserver.StatusError }

func (e *WatchEventError) Error() string { return "error event: " + e.Status.Error() }
func (e *WatchEventError) Unwrap() error { return e.Status }

// errVeryShortWatch is a watch that ended cleanly at once with no event.
var errVeryShortWatch = errors.New("very short watch: the watch ended cleanly at once, with no event")

// veryShortWatch is how short a watch without events must be to count as
// a failure.
const veryShortWatch = time.Second

// Classify says what err means; ClassNone for nil.
func Classify(err error) ErrorClass {
	if err == nil {
		return ClassNone
	}
	var se *apiserver.StatusError
	var idle *IdleError
	var wev *WatchEventError
	switch {
	case errors.Is(err, errVeryShortWatch):
		return ClassVeryShortWatch
	case errors.As(err, &idle):
		return ClassStalled
	case !errors.As(err, &se):
		// context.DeadlineExceeded from a dial or header timeout, a
		// reset, a TLS failure, a stream cut or garbled mid-event.
		return ClassTransport
	case se.Code == http.StatusGone:
		return ClassExpired
	case isTooLargeResourceVersion(se):
		return ClassTooLargeResourceVersion
	case se.Code == http.StatusUnauthorized:
		return ClassUnauthorized
	case se.Code == http.StatusForbidden:
		return ClassForbidden
	case errors.As(err, &wev):
		return ClassWatchError
	case se.Code == http.StatusTooManyRequests:
		return ClassThrottled
	case se.Code >= 400 && se.Code < 500:
		return ClassBadRequest
	}
	return ClassServerError
}

// isTooLargeResourceVersion: the server has not caught up with the
// resourceVersion asked for (a watch or exact list on a lagging apiserver
// of an HA pair). client-go checks the cause, and the message for servers
// that predate it.
func isTooLargeResourceVersion(se *apiserver.StatusError) bool {
	if slices.Contains(se.Causes, "ResourceVersionTooLarge") {
		return true
	}
	return se.Code == http.StatusGatewayTimeout && strings.Contains(se.Message, "Too large resource version")
}

// describe is the text Status.Error carries (and /readyz shows): for the
// classes an operator must fix, it says so first, then the apiserver's
// own words.
func describe(c ErrorClass, kind string, err error) string {
	switch c {
	case ClassUnauthorized:
		return fmt.Sprintf("unauthorized: an operator must fix kdisc's credentials (token, token_file or client certificate): %v", err)
	case ClassForbidden:
		return fmt.Sprintf("forbidden: an operator must grant kdisc get, list and watch on %s (RBAC): %v", kind, err)
	case ClassBadRequest:
		return fmt.Sprintf("bad request: an operator must fix the configuration: %v", err)
	}
	return err.Error()
}

// readEventStatus reads the Status of a watch ERROR event (JSON or
// protobuf) into se and returns its code, 0 when absent.
func readEventStatus(raw []byte, se *apiserver.StatusError) int {
	if protowire.IsEnvelope(raw) {
		msg, err := protowire.Unwrap(raw)
		if err != nil {
			return 0
		}
		code, _ := apiserver.ReadStatusProto(msg, se)
		return code
	}
	return readJSONStatus(raw, se)
}

// readJSONStatus reads the JSON Status of a watch ERROR event into se and
// returns its code, 0 when absent.
func readJSONStatus(raw []byte, se *apiserver.StatusError) int {
	return apiserver.ReadStatus(jsoniter.ParseBytes(jsoniter.ConfigDefault, raw), se)
}
