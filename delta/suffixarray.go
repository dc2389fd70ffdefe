package delta

import (
	"bytes"
	"encoding/binary"
	"index/suffixarray"
	"reflect"
	"unsafe"
)

// suffixArray returns the suffix array of t. The standard library's
// index/suffixarray builds it with SA-IS in linear time (about ten times
// faster than prefix doubling on a 1.3 MB text) but only exposes it through
// Index.Write; the array is read from the Index's field (indexArray) or
// else back from that serialization (a length
// slot, the text, then chunks of uvarints, each behind a size slot) and
// checked. Should the format ever differ, the check fails and the
// prefix-doubling construction below is used instead.
func suffixArray(t []byte) []int32 {
	if sa, ok := stdSuffixArray(t); ok {
		return sa
	}
	return doublingSuffixArray(t)
}

// indexArray reads the array out of an Index without the serialization
// (which costs a third of the construction on a 1.2 MB text): the Index's
// unexported field sa.int32 (Go 1.15 and later). checkSuffixArray guards
// against a change of that layout.
func indexArray(x *suffixarray.Index, n int) ([]int32, bool) {
	f := reflect.ValueOf(x).Elem().FieldByName("sa")
	if !f.IsValid() || f.Kind() != reflect.Struct {
		return nil, false
	}
	f = f.FieldByName("int32")
	if !f.IsValid() || f.Type() != reflect.TypeOf([]int32(nil)) || f.Len() != n {
		return nil, false
	}
	return *(*[]int32)(unsafe.Pointer(f.UnsafeAddr())), true
}

// checkSuffixArray: a permutation, ordered by first byte.
func checkSuffixArray(t []byte, sa []int32) bool {
	if len(sa) != len(t) {
		return false
	}
	seen := make([]bool, len(t))
	for i, s := range sa {
		if s < 0 || int(s) >= len(t) || seen[s] || (i > 0 && t[sa[i-1]] > t[s]) {
			return false
		}
		seen[s] = true
	}
	return true
}

func stdSuffixArray(t []byte) ([]int32, bool) {
	n := len(t)
	if n == 0 || n >= 1<<31-1 {
		return nil, false
	}
	x := suffixarray.New(t)
	if sa, ok := indexArray(x, n); ok && checkSuffixArray(t, sa) {
		return sa, true
	}
	var buf bytes.Buffer
	buf.Grow(n*4 + 1024)
	if err := x.Write(&buf); err != nil {
		return nil, false
	}
	b := buf.Bytes()
	const slot = binary.MaxVarintLen64
	if len(b) < slot+n {
		return nil, false
	}
	if l, k := binary.Varint(b[:slot]); k <= 0 || l != int64(n) {
		return nil, false
	}
	b = b[slot+n:]
	sa := make([]int32, 0, n)
	for len(b) > 0 {
		if len(b) < slot {
			return nil, false
		}
		size, k := binary.Varint(b[:slot])
		if k <= 0 || size < slot || size > int64(len(b)) {
			return nil, false
		}
		chunk := b[slot:size]
		for len(chunk) > 0 {
			v, k := binary.Uvarint(chunk)
			if k <= 0 || v >= uint64(n) || len(sa) == n {
				return nil, false
			}
			sa = append(sa, int32(v))
			chunk = chunk[k:]
		}
		b = b[size:]
	}
	return sa, checkSuffixArray(t, sa)
}

// doublingSuffixArray builds the suffix array of t by prefix doubling with
// radix sorts (Manber-Myers): O(n log n) in the worst case, and robust on
// the long runs of 0xFF and 0x00 that firmware images are full of, where
// comparison sorts go quadratic.
func doublingSuffixArray(t []byte) []int32 {
	n := len(t)
	sa := make([]int32, n)
	if n == 0 {
		return sa
	}
	rank := make([]int32, n)
	tmp := make([]int32, n)
	classes := 256
	cnt := make([]int32, max(classes, n)+1)
	for i, c := range t {
		rank[i] = int32(c)
		cnt[c]++
	}
	sum := int32(0)
	for c := 0; c < classes; c++ {
		sum, cnt[c] = sum+cnt[c], sum
	}
	for i, c := range t {
		sa[cnt[c]] = int32(i)
		cnt[c]++
	}
	for k := 1; ; k <<= 1 {
		// Order by the second key (rank at i+k; suffixes shorter than that
		// come first), then stable counting sort by the first key.
		p := 0
		for i := n - k; i < n; i++ {
			if i >= 0 {
				tmp[p] = int32(i)
				p++
			}
		}
		for _, s := range sa {
			if int(s) >= k {
				tmp[p] = s - int32(k)
				p++
			}
		}
		for c := 0; c < classes; c++ {
			cnt[c] = 0
		}
		for _, s := range tmp {
			cnt[rank[s]]++
		}
		sum = 0
		for c := 0; c < classes; c++ {
			sum, cnt[c] = sum+cnt[c], sum
		}
		for _, s := range tmp {
			sa[cnt[rank[s]]] = s
			cnt[rank[s]]++
		}
		second := func(i int32) int32 {
			if int(i)+k < n {
				return rank[int(i)+k]
			}
			return -1
		}
		r := int32(0)
		tmp[sa[0]] = 0
		for j := 1; j < n; j++ {
			a, b := sa[j-1], sa[j]
			if rank[a] != rank[b] || second(a) != second(b) {
				r++
			}
			tmp[b] = r
		}
		rank, tmp = tmp, rank
		classes = int(r) + 1
		if classes == n || k >= n {
			break
		}
	}
	return sa
}
