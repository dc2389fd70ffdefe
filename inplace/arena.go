package inplace

import (
	"errors"
	"fmt"
)

// ErrRAMBudget means the installer would need more working memory than its
// budget. It is checked before the flash changes.
var ErrRAMBudget = errors.New("installer RAM budget exceeded")

// arena is the installer's only working memory for flash data: one slice
// allocated when an install or resume starts, handed out front to back and
// never grown. Peak is the measured high-water mark that the reports quote.
type arena struct {
	buf  []byte
	used int
}

func newArena(size int) *arena { return &arena{buf: make([]byte, size)} }

// take hands out n bytes, or fails with ErrRAMBudget.
func (a *arena) take(n int, what string) ([]byte, error) {
	if n < 0 || a.used+n > len(a.buf) {
		return nil, fmt.Errorf("%s needs %d bytes, %d of %d left: %w", what, n, len(a.buf)-a.used, len(a.buf), ErrRAMBudget)
	}
	b := a.buf[a.used : a.used+n : a.used+n]
	a.used += n
	return b, nil
}
