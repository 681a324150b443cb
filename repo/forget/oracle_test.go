package forget_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend/local"
	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/internal/oracle"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/forget"
)

// TestApplyLikeRestic uses the library as a program would (list, Group,
// Apply) and compares every group's decisions and reasons with what
// restic 0.19.1's `forget --dry-run --json` says for the same repository.
func TestApplyLikeRestic(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "repo")
	be, err := local.Create(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(ctx, be, oracle.DefaultPassword, repo.InitOptions{Key: repo.KeyOptions{Params: &crypto.TestParams}}, repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	// One real snapshot from restic gives a tree for all the others.
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	o := oracle.New(t)
	sum := o.Backup(dir, []string{src}, "--host", "h0", "--time", "2020-01-01 00:00:00")
	id, err := blob.ParseID(sum.SnapshotID)
	if err != nil {
		t.Fatal(err)
	}
	base, err := r.LoadSnapshot(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	when := time.Date(2020, 1, 2, 0, 0, 0, 0, time.UTC)
	for range 250 {
		when = when.Add(time.Duration(1+rng.IntN(96))*time.Hour + time.Duration(rng.IntN(3600))*time.Second)
		sn := *base
		sn.Time = when.In(time.FixedZone("", 3600*(rng.IntN(25)-12)))
		sn.Hostname = []string{"h1", "h2"}[rng.IntN(2)]
		sn.Paths = [][]string{{"/a"}, {"/b", "/a"}}[rng.IntN(2)]
		sn.Tags = [][]string{nil, {"x"}, {"y", "x"}}[rng.IntN(3)]
		if _, err := r.SaveSnapshot(ctx, &sn); err != nil {
			t.Fatal(err)
		}
	}

	for _, c := range []struct {
		policy  forget.Policy
		groupBy forget.GroupBy
		args    []string
	}{
		{forget.Policy{Daily: 7, Weekly: 4, Monthly: 6, Yearly: forget.Unlimited}, forget.DefaultGroupBy,
			[]string{"--keep-daily", "7", "--keep-weekly", "4", "--keep-monthly", "6", "--keep-yearly", "unlimited"}},
		{forget.Policy{Last: 3, WithinDaily: forget.Duration{Months: 2}, WithinWeekly: forget.Duration{Years: 1}}, forget.GroupBy{Tags: true},
			[]string{"--keep-last", "3", "--keep-within-daily", "2m", "--keep-within-weekly", "1y", "--group-by", "tags"}},
		{forget.Policy{Hourly: 20, Within: forget.Duration{Days: 10, Hours: 12}, Tags: [][]string{{"x", "y"}}}, forget.GroupBy{},
			[]string{"--keep-hourly", "20", "--keep-within", "10d12h", "--keep-tag", "x,y", "--group-by", ""}},
	} {
		t.Run(c.policy.String(), func(t *testing.T) {
			want := map[string]oracle.ForgetGroup{}
			for _, g := range o.ForgetDryRunJSON(dir, append([]string{"--json"}, c.args...)...) {
				want[fmt.Sprint(g.Host, g.Paths, g.Tags)] = g
			}
			list, err := r.Snapshots(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			groups := forget.Group(list, c.groupBy)
			if len(groups) != len(want) {
				t.Fatalf("%d groups, restic %d", len(groups), len(want))
			}
			decided := 0
			for _, g := range groups {
				k := fmt.Sprint(g.Key.Hostname, g.Key.Paths, g.Key.Tags)
				w, ok := want[k]
				if !ok {
					t.Fatalf("restic has no group %s", k)
				}
				res := forget.Apply(g.Snapshots, c.policy, time.Now())
				if got, exp := ids(res.Keep), oracleIDs(w.Keep); !slices.Equal(got, exp) {
					t.Errorf("group %s keeps %v, restic %v", k, got, exp)
				}
				if got, exp := ids(res.Remove), oracleIDs(w.Remove); !slices.Equal(got, exp) {
					t.Errorf("group %s removes %v, restic %v", k, got, exp)
				}
				for i, reason := range res.Reasons {
					if i < len(w.Reasons) && !slices.Equal(reason.Matches, w.Reasons[i].Matches) {
						t.Errorf("group %s, snapshot %d: reasons %q, restic %q", k, i, reason.Matches, w.Reasons[i].Matches)
					}
				}
				if len(res.Keep) > 0 && len(res.Remove) > 0 {
					decided++
				}
			}
			if decided == 0 {
				t.Error("no group both kept and removed snapshots")
			}
		})
	}
}

func ids(list []*repo.Snapshot) []string {
	var out []string
	for _, sn := range list {
		out = append(out, sn.ID().String())
	}
	return out
}

func oracleIDs(list []oracle.Snapshot) []string {
	var out []string
	for _, sn := range list {
		out = append(out, sn.ID)
	}
	return out
}
