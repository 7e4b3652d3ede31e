//go:build !race

package kdisctest

const raceEnabled = false
