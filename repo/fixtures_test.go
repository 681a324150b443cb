package repo_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/backend/local"
	"github.com/cairn-backup/cairn/internal/fixtures"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/tree"
)

// Every restic-made fixture repository must read back exactly as its listing
// says: config, keys, index entries, snapshots, every node and every file's
// content and blob list.
func TestReadResticFixtures(t *testing.T) {
	names, err := fixtures.Names()
	if err != nil {
		t.Fatal(err)
	}
	if len(names) < 3 {
		t.Fatalf("only %d fixtures: %v", len(names), names)
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			dir, l := fixtures.Unpack(t, name)
			be, err := local.Open(ctx, dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range l.Keys {
				r, err := repo.Open(ctx, be, k.Password, repo.Options{})
				if err != nil {
					t.Fatalf("open with key %s: %v", k.ID[:8], err)
				}
				if r.KeyID().String() != k.ID {
					t.Fatalf("opened key %s, want %s", r.KeyID(), k.ID)
				}
			}
			if _, err := repo.Open(ctx, be, "not the password", repo.Options{}); !errors.Is(err, repo.ErrWrongPassword) {
				t.Fatalf("wrong password: %v", err)
			}
			r, err := repo.Open(ctx, be, l.Password, repo.Options{})
			if err != nil {
				t.Fatal(err)
			}
			cfg := r.Config()
			if cfg.Version != l.Config.Version || cfg.ID != l.Config.ID || strings.TrimLeft(l.Config.ChunkerPolynomial, "0") != strings.TrimLeft(formatPol(cfg), "0") {
				t.Fatalf("config %+v, listing %+v", cfg, l.Config)
			}
			if err := r.LoadIndex(ctx, nil); err != nil {
				t.Fatal(err)
			}
			idx := r.Index()
			if idx.Len(blob.DataBlob) != l.Index.DataBlobs || idx.Len(blob.TreeBlob) != l.Index.TreeBlobs || len(idx.Packs()) != l.Index.Packs {
				t.Fatalf("index: %d data %d tree %d packs; listing %+v", idx.Len(blob.DataBlob), idx.Len(blob.TreeBlob), len(idx.Packs()), l.Index)
			}
			for _, e := range l.Index.Entries {
				id, _ := blob.ParseID(e.ID)
				typ := blob.DataBlob
				if e.Type == "tree" {
					typ = blob.TreeBlob
				}
				found := false
				for _, loc := range idx.Lookup(blob.Handle{ID: id, Type: typ}) {
					if loc.Pack.String() == e.Pack && uint(loc.Offset) == e.Offset && uint(loc.Length) == e.Length && uint(loc.UncompressedLength) == e.UncompressedLength {
						found = true
					}
				}
				if !found {
					t.Fatalf("index entry %+v not found", e)
				}
			}
			sns, err := r.Snapshots(ctx, func(id blob.ID, err error) { t.Errorf("snapshot %s: %v", id.Str(), err) })
			if err != nil || len(sns) != len(l.Snapshots) {
				t.Fatalf("%d snapshots, want %d: %v", len(sns), len(l.Snapshots), err)
			}
			for i, want := range l.Snapshots {
				sn := sns[i]
				if sn.ID().String() != want.ID || sn.Tree.String() != want.Tree || !sn.Time.Equal(want.Time) || sn.Hostname != want.Hostname || strings.Join(sn.Paths, ",") != strings.Join(want.Paths, ",") || sn.ProgramVersion != want.ProgramVersion {
					t.Fatalf("snapshot %d: %+v\nwant %+v", i, sn, want)
				}
				var got []fixtures.Node
				walk(t, r, *sn.Tree, "", &got)
				if len(got) != len(want.Nodes) {
					t.Fatalf("snapshot %s: %d nodes, want %d", want.ID[:8], len(got), len(want.Nodes))
				}
				for j := range got {
					g, w := got[j], want.Nodes[j]
					// Listings escape names like restic's trees do.
					wantPath, err := w.RealPath()
					if err != nil {
						t.Fatal(err)
					}
					if g.Path != wantPath || g.Type != w.Type || g.Mode != w.Mode || g.Size != w.Size || !g.MTime.Equal(w.MTime) || g.SHA256 != w.SHA256 || strings.Join(g.Content, ",") != strings.Join(w.Content, ",") || g.Subtree != w.Subtree || g.LinkTarget != w.LinkTarget {
						t.Fatalf("node %d:\n got %+v\nwant %+v", j, g, w)
					}
				}
			}
		})
	}
}

func formatPol(c repo.Config) string {
	return strings.ToLower(strings.TrimPrefix(hexPol(uint64(c.Polynomial)), "0x"))
}

func hexPol(v uint64) string {
	const digits = "0123456789abcdef"
	if v == 0 {
		return "0"
	}
	var b []byte
	for v > 0 {
		b = append([]byte{digits[v&15]}, b...)
		v >>= 4
	}
	return string(b)
}

func walk(t *testing.T, r *repo.Repository, id blob.ID, prefix string, out *[]fixtures.Node) {
	t.Helper()
	ctx := context.Background()
	tr, err := r.LoadTree(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	// Re-encoding a restic tree must give the same bytes (same ID).
	if buf, err := tree.Encode(tr.Nodes()); err != nil || tree.ID(buf) != id {
		t.Fatalf("tree %s does not re-encode to itself: %v", id.Str(), err)
	}
	for _, n := range tr.Nodes() {
		fn := fixtures.Node{Path: prefix + n.Name, Type: string(n.Type), Mode: uint32(n.Mode), Size: n.Size, MTime: n.ModTime, LinkTarget: n.LinkTarget}
		switch n.Type {
		case tree.TypeFile:
			h := sha256.New()
			for _, c := range n.Content {
				fn.Content = append(fn.Content, c.String())
				data, err := r.LoadBlob(ctx, blob.DataBlob, c, nil)
				if err != nil {
					t.Fatal(err)
				}
				h.Write(data)
			}
			fn.SHA256 = hex.EncodeToString(h.Sum(nil))
		case tree.TypeDir:
			fn.Subtree = n.Subtree.String()
		}
		*out = append(*out, fn)
		if n.Type == tree.TypeDir {
			walk(t, r, *n.Subtree, prefix+n.Name+"/", out)
		}
	}
}
