package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// progressBar draws a one-line bar on a terminal-like writer. It redraws at
// most ten times a second so that a fast loop does not flood the output, and
// it is safe to call from several goroutines.
type progressBar struct {
	mu    sync.Mutex
	w     io.Writer
	label string
	total int64
	done  int64
	start time.Time
	last  time.Time
}

func newProgressBar(label string, total int64) *progressBar {
	return &progressBar{w: os.Stderr, label: label, total: total, start: time.Now()}
}

// Set records absolute progress.
func (p *progressBar) Set(done int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done = done
	if time.Since(p.last) >= 100*time.Millisecond || done >= p.total {
		p.last = time.Now()
		p.draw()
	}
}

// Add records relative progress.
func (p *progressBar) Add(n int64) {
	p.mu.Lock()
	d := p.done + n
	p.mu.Unlock()
	p.Set(d)
}

// Finish draws the final state and ends the line.
func (p *progressBar) Finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.draw()
	fmt.Fprintln(p.w)
}

func (p *progressBar) draw() {
	const width = 30
	frac := 0.0
	if p.total > 0 {
		frac = float64(p.done) / float64(p.total)
	}
	if frac > 1 {
		frac = 1
	}
	n := int(frac * width)
	fmt.Fprintf(p.w, "\r%s [%s%s] %3.0f%% %d/%d %s", p.label, strings.Repeat("=", n), strings.Repeat(" ", width-n),
		frac*100, p.done, p.total, time.Since(p.start).Round(100*time.Millisecond))
}
