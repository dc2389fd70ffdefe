package delta

// suffixArray builds the suffix array of t by prefix doubling with radix
// sorts (Manber-Myers): O(n log n) in the worst case, and robust on the long
// runs of 0xFF and 0x00 that firmware images are full of, where comparison
// sorts go quadratic. Go's index/suffixarray builds one faster but does not
// expose it for a longest-match search.
func suffixArray(t []byte) []int32 {
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
