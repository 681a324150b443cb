package tree

import (
	"fmt"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo/blob"
)

// benchNodes returns n file nodes shaped like restic's output for a real
// directory: nanosecond times in the local zone, atime = mtime, an owner, one
// or two content blobs.
func benchNodes(n int) []*Node {
	base := time.Date(2024, 3, 1, 12, 0, 0, 0, time.Local)
	nodes := make([]*Node, n)
	for i := range nodes {
		mtime := base.Add(time.Duration(i) * 1234567891)
		content := []blob.ID{blob.Hash(fmt.Appendf(nil, "c%d", i))}
		if i%7 == 0 {
			content = append(content, blob.Hash(fmt.Appendf(nil, "d%d", i)))
		}
		nodes[i] = &Node{
			Name: fmt.Sprintf("file-%07d.dat", i), Type: TypeFile, Mode: 0o644,
			ModTime: mtime, AccessTime: mtime, ChangeTime: mtime.Add(time.Second + 123),
			UID: 1000, GID: 1000, User: "backup", Group: "backup",
			Inode: 1_000_000 + uint64(i), DeviceID: 65024, Size: 4096 + uint64(i), Links: 1,
			Content: content,
		}
	}
	return nodes
}

var benchSizes = []int{100, 200_000}

// The fast encoder against the encoding/json reference, per node.
func BenchmarkEncode(b *testing.B) {
	for _, n := range benchSizes {
		nodes := benchNodes(n)
		for _, impl := range []struct {
			name string
			enc  func([]*Node) ([]byte, error)
		}{{"fast", Encode}, {"reference", refEncode}} {
			b.Run(fmt.Sprintf("%s/nodes=%d", impl.name, n), func(b *testing.B) {
				b.ReportAllocs()
				var size int
				for b.Loop() {
					buf, err := impl.enc(nodes)
					if err != nil {
						b.Fatal(err)
					}
					size = len(buf)
				}
				b.SetBytes(int64(size))
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/node")
			})
		}
	}
}

// Decoding a parent tree: the fast path against the encoding/json reference.
func BenchmarkDecode(b *testing.B) {
	for _, n := range benchSizes {
		buf, err := Encode(benchNodes(n))
		if err != nil {
			b.Fatal(err)
		}
		for _, impl := range []struct {
			name string
			dec  func([]byte) (*Tree, error)
		}{{"fast", Decode}, {"reference", decodeReference}} {
			b.Run(fmt.Sprintf("%s/nodes=%d", impl.name, n), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(buf)))
				for b.Loop() {
					t, err := impl.dec(buf)
					if err != nil || t.Len() != n {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/node")
			})
		}
	}
}

// Equal is what an unchanged re-backup runs for every file.
func BenchmarkEqual(b *testing.B) {
	nodes := benchNodes(100)
	other := benchNodes(100)
	b.ReportAllocs()
	for b.Loop() {
		for i := range nodes {
			if !nodes[i].Equal(other[i]) {
				b.Fatal("not equal")
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(nodes)), "ns/node")
}
