//go:build race

package kdisctest

// raceEnabled says the test binary runs with the race detector, and so
// builds kdisc with it.
const raceEnabled = true
