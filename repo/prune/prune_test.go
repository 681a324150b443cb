package prune_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend/local"
	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/check"
	"github.com/cairn-backup/cairn/repo/prune"
	"github.com/cairn-backup/cairn/repo/tree"
)

func newTestRepo(t *testing.T) (*repo.Repository, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	be, err := local.Create(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(t.Context(), be, "pw", repo.InitOptions{Key: repo.KeyOptions{Params: &crypto.TestParams}}, repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, dir
}

// reopen opens the repository afresh, with the index as stored.
func reopen(t *testing.T, dir string) *repo.Repository {
	t.Helper()
	be, err := local.Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(t.Context(), be, "pw", repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	if err := r.LoadIndex(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	return r
}

// snapshotOf stores a snapshot of one file whose content is the given blob
// IDs (the blobs must be stored separately).
func snapshotOf(t *testing.T, r *repo.Repository, content []blob.ID) {
	t.Helper()
	ctx := t.Context()
	w, err := r.NewBlobWriter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	buf, err := tree.Encode([]*tree.Node{{Name: "f", Type: tree.TypeFile, Mode: 0o644, Content: content}})
	if err != nil {
		t.Fatal(err)
	}
	root := blob.Hash(buf)
	if _, err := w.SaveBlob(ctx, blob.TreeBlob, buf, root); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.SaveSnapshot(ctx, &repo.Snapshot{Time: time.Now(), Tree: &root, Paths: []string{"/"}}); err != nil {
		t.Fatal(err)
	}
}

func saveData(t *testing.T, r *repo.Repository, again bool, data ...string) []blob.ID {
	t.Helper()
	ctx := t.Context()
	w, err := r.NewBlobWriter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []blob.ID
	for _, d := range data {
		id := blob.Hash([]byte(d))
		save := w.SaveBlob
		if again {
			save = w.SaveBlobAgain
		}
		if _, err := save(ctx, blob.DataBlob, []byte(d), id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	return ids
}

func mustCheck(t *testing.T, r *repo.Repository) {
	t.Helper()
	var problems []string
	rep, err := check.Run(t.Context(), r, check.Options{ReadData: true}, func(p check.Problem) {
		if !p.Hint {
			problems = append(problems, p.Error())
		}
	})
	if err != nil || !rep.OK() || len(problems) > 0 {
		t.Fatalf("check: %v %q", err, problems)
	}
}

// A blob stored in two packs (what an interrupted prune leaves) counts once
// as used; a prune keeps exactly one copy and the repository stays whole.
func TestDuplicates(t *testing.T) {
	r, dir := newTestRepo(t)
	ids := saveData(t, r, false, "x", "y")
	saveData(t, r, true, "x") // a second pack with x alone
	snapshotOf(t, r, ids)

	r = reopen(t, dir)
	ctx, lock, err := r.Lock(t.Context(), true, repo.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Unlock()
	plan, err := prune.NewPlan(ctx, r, prune.Options{MaxUnused: prune.MaxUnusedBytes(0)})
	if err != nil {
		t.Fatal(err)
	}
	s := plan.Stats()
	if s.Blobs.Used != 3 || s.Blobs.Duplicate != 1 || s.Blobs.Unused != 0 {
		t.Fatalf("used %d duplicate %d unused %d, want 3 1 0 (x, y, the tree; one copy of x)", s.Blobs.Used, s.Blobs.Duplicate, s.Blobs.Unused)
	}
	if err := plan.Execute(ctx); err != nil {
		t.Fatal(err)
	}
	r = reopen(t, dir)
	if n := len(r.Index().Lookup(blob.Handle{ID: ids[0], Type: blob.DataBlob})); n != 1 {
		t.Errorf("%d copies of x after the prune", n)
	}
	mustCheck(t, r)
}

// A used blob in no pack stops the prune before anything changes.
func TestMissingBlob(t *testing.T) {
	r, dir := newTestRepo(t)
	ids := saveData(t, r, false, "here")
	snapshotOf(t, r, append(ids, blob.Hash([]byte("never stored"))))
	r = reopen(t, dir)
	_, err := prune.NewPlan(t.Context(), r, prune.Options{})
	if !errors.Is(err, prune.ErrIndexIncomplete) {
		t.Fatalf("NewPlan: %v, want ErrIndexIncomplete", err)
	}
}

// A dry run changes nothing; a plan runs once.
func TestDryRunAndOnce(t *testing.T) {
	r, dir := newTestRepo(t)
	saveData(t, r, false, "unused")
	ids := saveData(t, r, false, "used")
	snapshotOf(t, r, ids)
	r = reopen(t, dir)
	plan, err := prune.NewPlan(t.Context(), r, prune.Options{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.RemovePacks()) != 1 {
		t.Fatalf("remove %v, want the pack of the unused blob", plan.RemovePacks())
	}
	if err := plan.Execute(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !reopen(t, dir).Index().Has(blob.Handle{ID: blob.Hash([]byte("unused")), Type: blob.DataBlob}) {
		t.Fatal("the dry run removed data")
	}
	plan, err = prune.NewPlan(t.Context(), r, prune.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := plan.Execute(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := plan.Execute(context.Background()); err == nil {
		t.Error("a plan ran twice")
	}
	r = reopen(t, dir)
	if r.Index().Has(blob.Handle{ID: blob.Hash([]byte("unused")), Type: blob.DataBlob}) {
		t.Error("the unused blob is still indexed")
	}
	mustCheck(t, r)
}

func TestParseMaxUnused(t *testing.T) {
	for _, c := range []struct {
		in, out, err string
	}{
		{"5%", "5%", ""},
		{" 12.5% ", "12.5%", ""},
		{"unlimited", "unlimited", ""},
		{"10M", "10485760", ""},
		{"0", "0", ""},
		{"", "", "invalid value for --max-unused"},
		{"100%", "", "must be below 100%"},
		{"-1%", "", "must be positive"},
		{"x%", "", "invalid percentage"},
		{"NaN%", "", "must be a number"},
		{"1q", "", "invalid number of bytes"},
	} {
		m, err := prune.ParseMaxUnused(c.in)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%q: error %v, want %q", c.in, err, c.err)
		case c.err == "" && (err != nil || m.String() != c.out):
			t.Errorf("%q: %v %v, want %s", c.in, m, err, c.out)
		}
	}
	if got := (prune.MaxUnused{}).String(); got != "5%" {
		t.Errorf("zero value is %s, want 5%%", got)
	}
}
