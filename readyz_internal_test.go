package kdisc

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/kdisc/kdisc/apiserver"
	"github.com/kdisc/kdisc/dump"
	"github.com/kdisc/kdisc/listwatch"
)

// Every list-watch error class, and every apiserver failure under
// "transport", has its own word in dump.Classes: the probe listener never
// falls back to "unknown" for a failure kdisc knows.
func TestReadyClassCoversEveryClass(t *testing.T) {
	classes := []listwatch.ErrorClass{
		listwatch.ClassNone, listwatch.ClassExpired, listwatch.ClassTooLargeResourceVersion,
		listwatch.ClassWatchError, listwatch.ClassVeryShortWatch, listwatch.ClassUnauthorized,
		listwatch.ClassForbidden, listwatch.ClassBadRequest, listwatch.ClassThrottled,
		listwatch.ClassServerError, listwatch.ClassStalled,
	}
	failures := []apiserver.Failure{
		apiserver.FailureNone, apiserver.FailureTokenFile, apiserver.FailureExec,
		apiserver.FailureTLS, apiserver.FailureUnreachable,
	}
	seen := map[string]bool{}
	word := func(c listwatch.ErrorClass, f apiserver.Failure) {
		w := readyClass(c, f)
		assert.NotEqual(t, dump.ClassUnknown, w, "%q %q", c, f)
		assert.True(t, slices.Contains(dump.Classes, w), "%q %q -> %q is not in dump.Classes", c, f, w)
		assert.False(t, seen[w], "%q %q -> %q twice", c, f, w)
		seen[w] = true
	}
	for _, c := range classes {
		word(c, apiserver.FailureExec) // the failure counts only under transport
	}
	for _, f := range failures {
		word(listwatch.ClassTransport, f)
	}
	assert.Equal(t, dump.ClassUnknown, readyClass("some_new_class", apiserver.FailureNone))
	assert.Equal(t, dump.ClassTransport, readyClass(listwatch.ClassTransport, "some_new_failure"), "an unknown failure stays transport")
}
