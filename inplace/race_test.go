//go:build race

package inplace

// The race detector slows the decoder ten times; the sweeps then sample.
const raceEnabled = true
