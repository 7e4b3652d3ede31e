package apiserver

import (
	"errors"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	jsoniter "github.com/json-iterator/go"

	"github.com/kdisc/kdisc/internal/protowire"
)

// StatusError is a failure the API server reported: a non-2xx answer, or an
// ERROR event inside a watch stream. Code is the HTTP status code.
type StatusError struct {
	Code       int
	Reason     string        // the Status reason, e.g. "Expired", "Forbidden"
	Message    string        // the Status message
	RetryAfter time.Duration // from a Retry-After header or details.retryAfterSeconds, 0 when absent
	Causes     []string      // details.causes[].reason, e.g. "ResourceVersionTooLarge"
}

func (e *StatusError) Error() string {
	s := strconv.Itoa(e.Code) + " " + http.StatusText(e.Code) + " from apiserver"
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// IsGone reports whether err says the requested resourceVersion or continue
// token is too old (HTTP 410 Gone): the caller must list again.
func IsGone(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Code == http.StatusGone
}

// RetryAfter returns the delay the server asked for, or 0.
func RetryAfter(err error) time.Duration {
	var se *StatusError
	if errors.As(err, &se) {
		return se.RetryAfter
	}
	return 0
}

// seconds is n seconds, saturated rather than wrapped: a Retry-After of
// centuries must not become a negative or short delay.
func seconds(n int) time.Duration {
	return time.Duration(min(n, math.MaxInt64/int(time.Second))) * time.Second
}

// maxStatusBody bounds how much of an error answer is read: a Status is
// small, and a misbehaving proxy in between must not make us buffer more.
const maxStatusBody = 64 << 10

func statusFromResponse(resp *http.Response) *StatusError {
	e := &StatusError{Code: resp.StatusCode}
	if s := resp.Header.Get("Retry-After"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			e.RetryAfter = seconds(n)
		} else if t, err := http.ParseTime(s); err == nil {
			e.RetryAfter = max(time.Until(t), 0) // a date already passed asks for no delay
		}
	}
	if IsProtobuf(resp.Header.Get("Content-Type")) {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxStatusBody))
		msg, err := protowire.Unwrap(body)
		if err == nil {
			_, err = ReadStatusProto(msg, e)
		}
		if err != nil {
			e.Reason, e.Message, e.Causes = "", "", nil // not a Status body: say only the HTTP status
		}
	} else {
		it := jsoniter.Parse(jsoniter.ConfigDefault, io.LimitReader(resp.Body, maxStatusBody), 1024)
		ReadStatus(it, e)
		if it.Error != nil && it.Error != io.EOF {
			e.Reason, e.Message = "", "" // not a Status body: say only the HTTP status
		}
	}
	// Drain a little so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxStatusBody))
	return e
}

// ReadStatus reads a metav1.Status object into e (reason, message,
// details.causes, and details.retryAfterSeconds unless e.RetryAfter is
// already set) and returns its code, 0 when absent. The caller checks
// it.Error.
func ReadStatus(it *jsoniter.Iterator, e *StatusError) int {
	code := 0
	if it.WhatIsNext() != jsoniter.ObjectValue { // json-iterator would take ",..." for an object
		it.ReportError("ReadStatus", "not a JSON object")
		return 0
	}
	for f := it.ReadObject(); f != ""; f = it.ReadObject() {
		switch f {
		case "reason":
			e.Reason = it.ReadString()
		case "message":
			e.Message = it.ReadString()
		case "code":
			code = it.ReadInt()
		case "details":
			readDetails(it, e)
		default:
			it.Skip()
		}
	}
	return code
}

func readDetails(it *jsoniter.Iterator, e *StatusError) {
	if it.WhatIsNext() != jsoniter.ObjectValue {
		it.Skip()
		return
	}
	for f := it.ReadObject(); f != ""; f = it.ReadObject() {
		switch f {
		case "retryAfterSeconds":
			if n := it.ReadInt(); n > 0 && e.RetryAfter == 0 {
				e.RetryAfter = seconds(n)
			}
		case "causes":
			for it.ReadArray() {
				for g := it.ReadObject(); g != ""; g = it.ReadObject() {
					if g == "reason" {
						e.Causes = append(e.Causes, it.ReadString())
					} else {
						it.Skip()
					}
				}
			}
		default:
			it.Skip()
		}
	}
}

// ReadStatusProto reads a protobuf meta/v1 Status message (out of its
// envelope) into e, as ReadStatus reads a JSON one, and returns its code,
// 0 when absent.
func ReadStatusProto(msg []byte, e *StatusError) (int, error) {
	var d protowire.Decoder
	d.Reset(msg)
	code := 0
	for d.Next(d.Len()) {
		switch d.Field() {
		case 3:
			e.Message = strings.Clone(d.String())
		case 4:
			e.Reason = strings.Clone(d.String())
		case 5:
			readDetailsProto(&d, e)
		case 6:
			code = int(d.Int32())
		default:
			d.Skip()
		}
	}
	return code, d.Err()
}

// readDetailsProto reads StatusDetails: causes (4, each a StatusCause
// whose reason is 1) and retryAfterSeconds (5).
func readDetailsProto(d *protowire.Decoder, e *StatusError) {
	end := d.Message()
	for d.Next(end) {
		switch d.Field() {
		case 4:
			cend := d.Message()
			for d.Next(cend) {
				if d.Field() != 1 {
					d.Skip()
				} else if r := d.String(); r != "" { // JSON omits an empty reason
					e.Causes = append(e.Causes, strings.Clone(r))
				}
			}
		case 5:
			if n := int(d.Int32()); n > 0 && e.RetryAfter == 0 {
				e.RetryAfter = seconds(n)
			}
		default:
			d.Skip()
		}
	}
}
