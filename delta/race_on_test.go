//go:build race

package delta

// raceEnabled: the race detector slows the generator about tenfold, so the
// big real pairs run only once, without it (CI runs go test -race).
const raceEnabled = true
