//go:build race

package shm

// raceEnabled: the race detector slows the table's tight loops about
// tenfold; long property tests run fewer rounds under it.
const raceEnabled = true
