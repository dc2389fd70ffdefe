package delta

import (
	"bytes"
	"math/rand"
	"slices"
	"testing"
)

// TestSuffixArrayBothBuilders checks the standard-library path and the
// prefix-doubling fallback against a plain comparison sort, on random,
// repetitive and tiny texts.
func TestSuffixArrayBothBuilders(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	texts := [][]byte{
		{},
		{7},
		[]byte("banana"),
		bytes.Repeat([]byte{0xFF}, 3000),
		bytes.Repeat([]byte("abcab"), 700),
	}
	for _, n := range []int{100, 5000} {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Intn(3))
		}
		texts = append(texts, b)
	}
	for i, txt := range texts {
		want := make([]int32, len(txt))
		for j := range want {
			want[j] = int32(j)
		}
		slices.SortFunc(want, func(a, b int32) int { return bytes.Compare(txt[a:], txt[b:]) })
		if got := suffixArray(txt); !slices.Equal(got, want) {
			t.Errorf("text %d: suffixArray differs from a comparison sort", i)
		}
		if got := doublingSuffixArray(txt); !slices.Equal(got, want) {
			t.Errorf("text %d: doublingSuffixArray differs from a comparison sort", i)
		}
		if len(txt) > 0 {
			if _, ok := stdSuffixArray(txt); !ok {
				t.Errorf("text %d: the standard library's suffix array did not read back", i)
			}
		}
	}
}
