package main

import (
	"os"
	"testing"
	"time"
)

// The JVM's heap is read from jcmd GC.heap_info, whose layout depends on
// the collector: G1 (the default on a 2-core machine with this memory)
// and the serial collector are both summed.
func TestParseHeapInfo(t *testing.T) {
	g1 := `12345:
 garbage-first heap   total 262144K, used 21504K [0x00000000f0000000, 0x0000000100000000)
  region size 1024K, 3 young (3072K), 0 survivors (0K)
 Metaspace       used 20000K, committed 20480K, reserved 1114112K
`
	if got := parseHeapInfo(g1); got != 21504<<10 {
		t.Errorf("G1: %d bytes, want %d", got, 21504<<10)
	}
	serial := `12345:
 def new generation   total 4928K, used 1093K [0x00000000f0000000, 0x00000000f0550000, 0x00000000f5550000)
  eden space 4416K,  24% used [0x00000000f0000000, 0x00000000f0111111, 0x00000000f0450000)
 tenured generation   total 10944K, used 8000K [0x00000000f5550000, 0x00000000f6000000, 0x0000000100000000)
 Metaspace       used 20000K, committed 20480K, reserved 1114112K
`
	if got := parseHeapInfo(serial); got != (1093+8000)<<10 {
		t.Errorf("serial: %d bytes, want %d (Metaspace is not heap)", got, (1093+8000)<<10)
	}
}

// procCPU reads a process's CPU time from /proc as the bench reads the
// JVM's: for this process it grows with work done and matches getrusage.
func TestProcCPU(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc here")
	}
	before, err := procCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Work until getrusage counts 200 ms of CPU (bounded by wall time, so a
	// loaded machine slows the test rather than failing it).
	x, ru0 := 0, cpuTime()
	for start := time.Now(); cpuTime()-ru0 < 200*time.Millisecond && time.Since(start) < 20*time.Second; {
		x++
	}
	work := cpuTime() - ru0
	after, err := procCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// /proc counts in clock ticks (10 ms): allow a few.
	if after-before < work-50*time.Millisecond {
		t.Fatalf("CPU time in /proc grew by %v while getrusage counted %v of busy loop (%d)", after-before, work, x)
	}
	if ru := cpuTime(); after > ru+50*time.Millisecond {
		t.Fatalf("/proc says %v, getrusage %v", after, ru)
	}
}
