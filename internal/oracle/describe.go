package oracle

import (
	"crypto/sha256"
	"encoding/hex"
	"path"
	"slices"
	"strings"

	"github.com/cairn-backup/cairn/internal/fixtures"
)

// Describe reads the repository with restic alone and returns what a
// fixture listing records about it: config, the key each password opens,
// every snapshot with every node (content blob IDs and the SHA-256 of the
// content, assembled from `restic cat blob`), every index entry and the
// number of pack files. The first password must open the repository. The
// caller fills in Name, Description, Archive, Root and Compression.
//
// A repository written by cairn can be described the same way and compared
// with cairn's own view of it.
func (r *Restic) Describe(repo string, passwords ...string) fixtures.Listing {
	r.t.Helper()
	if len(passwords) == 0 {
		passwords = []string{r.password}
	}
	ro := r.WithPassword(passwords[0])
	l := fixtures.Listing{Generator: ro.programVersion(), Password: passwords[0]}

	cfg := ro.CatConfig(repo)
	l.Config = fixtures.Config{Version: cfg.Version, ID: cfg.ID, ChunkerPolynomial: cfg.ChunkerPolynomial}

	for _, pw := range passwords {
		keyID := ""
		for _, k := range r.WithPassword(pw).KeyList(repo) {
			if k.Current {
				keyID = k.ID
			}
		}
		if keyID == "" {
			r.t.Fatalf("oracle: describe %s: no current key in restic key list", repo)
		}
		l.Keys = append(l.Keys, fixtures.Key{ID: keyID, Password: pw})
	}

	blobs := map[string][]byte{} // data blob cache: several files share blobs
	for _, sn := range ro.Snapshots(repo) {
		s := fixtures.Snapshot{
			ID: sn.ID, Time: sn.Time, Tree: sn.Tree, Parent: sn.Parent, Paths: sn.Paths,
			Hostname: sn.Hostname, Username: sn.Username, Tags: sn.Tags, ProgramVersion: sn.ProgramVersion,
		}
		ro.describeTree(repo, "", ro.CatTreeBlob(repo, sn.Tree), blobs, &s.Nodes)
		l.Snapshots = append(l.Snapshots, s)
	}
	slices.SortStableFunc(l.Snapshots, func(a, b fixtures.Snapshot) int { return a.Time.Compare(b.Time) })

	for _, id := range ro.List(repo, "index") {
		l.Index.Files++
		for _, p := range ro.CatIndex(repo, id).Packs {
			l.Index.Packs++
			for _, b := range p.Blobs {
				l.Index.Blobs++
				switch b.Type {
				case "data":
					l.Index.DataBlobs++
				case "tree":
					l.Index.TreeBlobs++
				}
				l.Index.Entries = append(l.Index.Entries, fixtures.Blob{
					ID: b.ID, Type: b.Type, Pack: p.ID, Offset: b.Offset, Length: b.Length,
					UncompressedLength: b.UncompressedLength,
				})
			}
		}
	}
	slices.SortFunc(l.Index.Entries, func(a, b fixtures.Blob) int {
		if c := strings.Compare(a.ID, b.ID); c != 0 {
			return c
		}
		return strings.Compare(a.Pack, b.Pack)
	})
	l.PackCount = len(ro.List(repo, "packs"))
	return l
}

// describeTree appends the nodes of tree (at dir) and of all its subtrees.
func (r *Restic) describeTree(repo, dir string, tree Tree, blobs map[string][]byte, out *[]fixtures.Node) {
	r.t.Helper()
	for _, n := range tree.Nodes {
		node := fixtures.Node{
			Path: path.Join(dir, n.Name), Type: n.Type, Mode: uint32(n.Mode), Size: n.Size, MTime: n.ModTime,
			Content: n.Content, Subtree: n.Subtree, LinkTarget: n.LinkTarget, LinkTargetRaw: n.LinkTargetRaw,
		}
		if n.Type == "file" {
			h := sha256.New()
			for _, id := range n.Content {
				data, ok := blobs[id]
				if !ok {
					data = r.Cat(repo, "blob", id)
					if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != id {
						r.t.Fatalf("oracle: describe %s: blob %s has SHA-256 %x", repo, id, sum)
					}
					blobs[id] = data
				}
				h.Write(data)
			}
			node.SHA256 = hex.EncodeToString(h.Sum(nil))
		}
		*out = append(*out, node)
		if n.Type == "dir" && n.Subtree != "" {
			r.describeTree(repo, node.Path, r.CatTreeBlob(repo, n.Subtree), blobs, out)
		}
	}
}

// programVersion returns "restic X.Y.Z" as restic writes it into snapshots.
func (r *Restic) programVersion() string {
	f := strings.Fields(r.Version())
	if len(f) < 2 {
		r.t.Fatalf("oracle: unexpected restic version output %q", r.Version())
	}
	return f[0] + " " + f[1]
}
