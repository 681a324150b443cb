//go:build linux

package local_test

import (
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/sources"
	"github.com/cairn-backup/cairn/sources/local"
)

// benchTree returns a tree of 200k small files (20 × 10 directories of
// 1000 files, 0–1000 bytes each, about 100 MB), the shape of the "200k
// tiny files" measurements in perf-notes. It is generated once into a
// cache outside the repository ($CAIRN_BENCH_TREE or the temporary
// directory) and reused by later runs.
func benchTree(b *testing.B) string {
	b.Helper()
	dir := os.Getenv("CAIRN_BENCH_TREE")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "cairn-bench-200k-v1")
	}
	done := filepath.Join(dir, ".complete")
	if _, err := os.Stat(done); err == nil {
		return dir
	}
	b.Logf("generating 200k files in %s (once)", dir)
	if err := os.RemoveAll(dir); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(200, 1000))
	buf := make([]byte, 1000)
	for i := range 20 {
		for j := range 10 {
			sub := filepath.Join(dir, fmt.Sprintf("d%02d", i), fmt.Sprintf("s%02d", j))
			if err := os.MkdirAll(sub, 0o755); err != nil {
				b.Fatal(err)
			}
			for k := range 1000 {
				n := rng.IntN(len(buf) + 1)
				for x := range buf[:n] {
					buf[x] = byte(rng.Uint32())
				}
				if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%04d", k)), buf[:n], 0o644); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	if err := os.WriteFile(done, nil, 0o644); err != nil {
		b.Fatal(err)
	}
	return dir
}

// countVisitor counts entries, the least a visitor can do.
type countVisitor struct{ n atomic.Int64 }

func (c *countVisitor) Visit(context.Context, *sources.Entry) error { c.n.Add(1); return nil }
func (c *countVisitor) LeaveDir(context.Context, string) error      { return nil }

var bareNsPerOp atomic.Int64

// BenchmarkWalk200k walks the 200k-file tree with the local source and,
// for comparison, with filepath.WalkDir plus an Lstat per entry (what a
// bare lstat walk costs in Go). Run both to get the ratio reported as
// x-bare by Local:
//
//	go test -run '^$' -bench 'Walk200k' -benchtime 5x ./sources/local
func BenchmarkWalk200k(b *testing.B) {
	dir := benchTree(b)
	b.Run("Bare", func(b *testing.B) {
		start := time.Now()
		for b.Loop() {
			n := 0
			err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if _, err := os.Lstat(p); err != nil {
					return err
				}
				n++
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(n), "entries")
		}
		bareNsPerOp.Store(time.Since(start).Nanoseconds() / int64(b.N))
	})
	for _, workers := range []int{0, 1} {
		name := "Local"
		if workers == 1 {
			name = "Local-1worker"
		}
		b.Run(name, func(b *testing.B) {
			src, err := local.New([]string{dir}, local.Options{Workers: workers})
			if err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			for b.Loop() {
				v := &countVisitor{}
				if err := src.Walk(context.Background(), sources.WalkOptions{}, v); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(v.n.Load()), "entries")
			}
			if bare := bareNsPerOp.Load(); bare > 0 {
				b.ReportMetric(float64(time.Since(start).Nanoseconds()/int64(b.N))/float64(bare), "x-bare")
			}
		})
	}
}
