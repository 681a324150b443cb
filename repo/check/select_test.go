package check_test

import (
	"context"
	"errors"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/check"
)

// With Select, ReadData reads only the packs of the selected snapshots: an
// empty selection reads nothing and misses the damage; selecting the
// snapshot finds it. A Select error is a snapshot problem.
func TestSelectLimitsReadData(t *testing.T) {
	ctx := context.Background()
	be, snID, d2 := fixture(t.Fatal)
	r := open(t, be)
	if err := r.LoadIndex(ctx, nil); err != nil {
		t.Fatal(err)
	}
	loc := r.Index().Lookup(blob.Handle{ID: d2, Type: blob.DataBlob})[0]
	flipInPack(t, be, backend.Handle{Type: backend.PackFile, Name: loc.Pack.String()}, int(loc.Offset)+20)

	none := func(context.Context) ([]*repo.Snapshot, error) { return nil, nil }
	rep, probs := run(t, be, check.Options{ReadData: true, Select: none})
	if !rep.OK() || rep.PacksRead != 0 {
		t.Fatalf("empty selection: report %+v, problems %v", rep, probs)
	}

	var offered int
	one := func(ctx context.Context) ([]*repo.Snapshot, error) {
		sn, err := open(t, be).LoadSnapshot(ctx, snID)
		return []*repo.Snapshot{sn}, err
	}
	rep, probs = run(t, be, check.Options{ReadData: true, Select: one, ReadFilter: func(m map[blob.ID]int64) map[blob.ID]int64 {
		offered = len(m)
		return m
	}})
	// The snapshot uses 4 packs: two data, two tree (each blob was
	// flushed on its own).
	if rep.OK() || len(rep.BrokenPacks) != 1 || rep.BrokenPacks[0] != loc.Pack || offered != 4 {
		t.Fatalf("selected snapshot: %d packs offered, report %+v, problems %v", offered, rep, probs)
	}

	bad := func(context.Context) ([]*repo.Snapshot, error) { return nil, errors.New("no matching ID found") }
	rep, probs = run(t, be, check.Options{Select: bad})
	if rep.OK() || len(probs) != 1 || probs[0].Kind != check.KindSnapshot {
		t.Fatalf("select error: report %+v, problems %v", rep, probs)
	}
}
