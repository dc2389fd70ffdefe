package tree

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkApplyRealTrees applies each pair's package to a fresh directory
// and reports the package's size and the zstd window and dictionary the data
// frame needs (fota delta bench --tree adds zstd and xdelta3 on the tars).
func BenchmarkApplyRealTrees(b *testing.B) {
	for _, p := range realPairs {
		b.Run(p.new, func(b *testing.B) {
			oldDir, newDir := benchPair(b, p.old, p.new)
			pkg := makePkg(b, oldDir, newDir)
			h, err := Parse(bytes.NewReader(pkg), int64(len(pkg)))
			if err != nil {
				b.Fatal(err)
			}
			win, dict, err := h.Memory(bytes.NewReader(pkg), mustScan(b, oldDir))
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				out := filepath.Join(b.TempDir(), "out")
				if err := Apply(oldDir, bytes.NewReader(pkg), int64(len(pkg)), pub(), out); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(pkg)), "pkg-bytes")
			b.ReportMetric(float64(p.zstd), "zstd-patch-from-bytes")
			b.ReportMetric(float64(win+dict), "window+dict-bytes")
		})
	}
}

func benchPair(b *testing.B, a, c string) (string, string) {
	src := filepath.Join("..", "..", "..", "shared", "trees")
	if _, err := os.Stat(filepath.Join(src, a+".tgz")); err != nil {
		b.Skipf("no %s (../shared/trees)", a)
	}
	dirs := make([]string, 2)
	for i, n := range []string{a, c} {
		d := b.TempDir()
		if err := untar(filepath.Join(src, n+".tgz"), d); err != nil {
			b.Fatal(err)
		}
		dirs[i] = filepath.Join(d, "package")
	}
	return dirs[0], dirs[1]
}
