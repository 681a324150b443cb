package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/internal/oracle"
	"github.com/cairn-backup/cairn/internal/testserver"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/blob"
)

// timeline is a repository holding hundreds of snapshots over three years
// from several hosts, path sets and tag sets, in several time zones.
type timeline struct {
	dir string
	r   *runner
	o   *oracle.Restic
	ids []string // every snapshot ID
}

// timelineSeries describes one host and path set: snapshots every
// minStep..maxStep, sometimes in bursts minutes apart.
type timelineSeries struct {
	host             string
	paths            []string
	zone             *time.Location
	minStep, maxStep time.Duration
	burst            float64 // chance that a few more follow within minutes
}

// newTimeline makes the repository cheaply: one real backup gives a tree,
// and every other snapshot is written with the library, pointing at it.
// Times are unique, so that restic's order (random among equal times) is
// never tested.
func newTimeline(t *testing.T) *timeline {
	t.Helper()
	dir := newRepo(t)
	src := filepath.Join(t.TempDir(), "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "file"), []byte("forget me not\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tl := &timeline{
		dir: dir,
		r:   newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir),
		o:   oracleFor(t),
	}
	sum := backupJSON(t, tl.r, "--host", "alpha", "--time", "2021-12-31 23:00:00", "--tag", "manual", src)
	first, err := blob.ParseID(sum["snapshot_id"].(string))
	if err != nil {
		t.Fatal(err)
	}
	tl.ids = append(tl.ids, first.String())

	ctx := context.Background()
	rp := openRepo(t, dir)
	base, err := rp.LoadSnapshot(ctx, first)
	if err != nil {
		t.Fatal(err)
	}

	zone := func(name string, offset time.Duration) *time.Location {
		return time.FixedZone(name, int(offset/time.Second))
	}
	series := []timelineSeries{
		{"alpha", []string{"/srv/data"}, time.UTC, 6 * time.Hour, 9 * 24 * time.Hour, 0.1},
		{"alpha", []string{"/home", "/etc"}, zone("CEST", 2*time.Hour), 2 * 24 * time.Hour, 12 * 24 * time.Hour, 0},
		{"beta", []string{"/srv/data"}, zone("EST", -5*time.Hour), 20 * time.Hour, 10 * 24 * time.Hour, 0.3},
		{"gamma", []string{"/var/lib"}, zone("IST", 5*time.Hour+30*time.Minute), 3 * 24 * time.Hour, 40 * 24 * time.Hour, 0.5},
	}
	tagSets := [][]string{nil, nil, nil, {"daily"}, {"daily"}, {"manual"}, {"weekly", "manual"}}
	rng := rand.New(rand.NewPCG(5, 2026))
	used := map[int64]bool{}
	start := time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC)
	end := time.Date(2025, 1, 10, 0, 0, 0, 0, time.UTC)
	save := func(s timelineSeries, when time.Time, tags []string) {
		for used[when.Unix()] {
			when = when.Add(time.Second)
		}
		used[when.Unix()] = true
		sn := *base
		sn.Time = when.In(s.zone)
		sn.Hostname = s.host
		sn.Paths = slices.Clone(s.paths)
		sn.Tags = slices.Clone(tags)
		id, err := rp.SaveSnapshot(ctx, &sn)
		if err != nil {
			t.Fatal(err)
		}
		tl.ids = append(tl.ids, id.String())
	}
	for _, s := range series {
		for when := start.Add(time.Duration(rng.Int64N(int64(s.maxStep)))); when.Before(end); {
			tags := tagSets[rng.IntN(len(tagSets))]
			save(s, when, tags)
			for rng.Float64() < s.burst {
				when = when.Add(time.Duration(1+rng.IntN(40)) * time.Minute)
				save(s, when, tags)
			}
			when = when.Add(s.minStep + time.Duration(rng.Int64N(int64(s.maxStep-s.minStep))))
			when = when.Add(time.Duration(rng.IntN(3600)) * time.Second)
		}
	}
	// Clocks go wrong: a snapshot from the future must not move the
	// keep-within windows (restic measures from the newest one before now).
	save(series[2], time.Date(2099, 6, 1, 12, 0, 0, 0, time.UTC), nil)
	return tl
}

// forgetGroups decodes forget --json output and fails on anything else.
func forgetGroups(t *testing.T, out string) []oracle.ForgetGroup {
	t.Helper()
	if strings.TrimSpace(out) == "" {
		return nil
	}
	var groups []oracle.ForgetGroup
	decode(t, out, &groups)
	return groups
}

// sameForgetJSON compares forget --json outputs as sets of groups (restic
// prints them in random order), byte for byte. Both may be empty: restic
// prints nothing when no snapshot was selected.
func sameForgetJSON(t *testing.T, mine, theirs string) bool {
	t.Helper()
	if strings.TrimSpace(mine) == "" || strings.TrimSpace(theirs) == "" {
		return mine == theirs
	}
	return sortedJSONArray(t, mine) == sortedJSONArray(t, theirs)
}

// describeForgetDiff names the first group and snapshot where cairn's
// decisions differ from restic's, for a readable failure.
func describeForgetDiff(mine, theirs []oracle.ForgetGroup) string {
	key := func(g oracle.ForgetGroup) string { return fmt.Sprintf("%s %v %v", g.Host, g.Paths, g.Tags) }
	byKey := map[string]oracle.ForgetGroup{}
	for _, g := range theirs {
		byKey[key(g)] = g
	}
	if len(mine) != len(theirs) {
		return fmt.Sprintf("cairn has %d groups, restic %d", len(mine), len(theirs))
	}
	for _, g := range mine {
		o, ok := byKey[key(g)]
		if !ok {
			return "restic has no group " + key(g)
		}
		ids := func(l []oracle.Snapshot) []string {
			var s []string
			for _, sn := range l {
				s = append(s, sn.ShortID+"@"+sn.Time.Format(time.RFC3339))
			}
			return s
		}
		if a, b := ids(g.Keep), ids(o.Keep); !slices.Equal(a, b) {
			return fmt.Sprintf("group %s keeps\ncairn:  %v\nrestic: %v", key(g), a, b)
		}
		if a, b := ids(g.Remove), ids(o.Remove); !slices.Equal(a, b) {
			return fmt.Sprintf("group %s removes\ncairn:  %v\nrestic: %v", key(g), a, b)
		}
		for i := range g.Reasons {
			if !slices.Equal(g.Reasons[i].Matches, o.Reasons[i].Matches) {
				return fmt.Sprintf("group %s, snapshot %s: cairn's reasons %q, restic's %q", key(g), g.Reasons[i].Snapshot.ShortID, g.Reasons[i].Matches, o.Reasons[i].Matches)
			}
		}
	}
	return "decisions equal, the JSON differs in the snapshots' fields"
}

// TestForgetPoliciesLikeRestic applies a table of policies to the same
// timeline with cairn and restic 0.19.1: the JSON of both (kept and
// removed snapshots and the reasons, per group) must be byte-identical
// once restic's random group order is sorted.
func TestForgetPoliciesLikeRestic(t *testing.T) {
	t.Parallel()
	tl := newTimeline(t)
	t.Logf("timeline: %d snapshots", len(tl.ids))
	if len(tl.ids) < 300 {
		t.Fatalf("timeline has only %d snapshots", len(tl.ids))
	}
	var mineTime, theirTime time.Duration
	defer func() { t.Logf("wall time of all dry runs: cairn %v, restic %v", mineTime, theirTime) }()
	for _, c := range []struct {
		args []string
		// allKept: the policy keeps every selected snapshot.
		allKept bool
	}{
		{args: []string{"--keep-last", "5"}},
		{args: []string{"--keep-hourly", "30"}},
		{args: []string{"--keep-daily", "10"}},
		{args: []string{"--keep-weekly", "8"}},
		{args: []string{"--keep-monthly", "12"}},
		{args: []string{"--keep-yearly", "10"}}, // more years than exist: the oldest stays too
		{args: []string{"--keep-daily", "7", "--keep-weekly", "5", "--keep-monthly", "12", "--keep-yearly", "3"}},
		{args: []string{"-l", "2", "-H", "4", "-d", "3", "-w", "2", "-m", "2", "-y", "1"}},
		{args: []string{"--keep-monthly", "unlimited"}},
		{args: []string{"--keep-last", "unlimited"}, allKept: true},
		{args: []string{"--keep-weekly", "unlimited", "--keep-daily", "5"}},
		{args: []string{"--keep-within", "30d"}},
		{args: []string{"--keep-within", "1y2m3d4h"}},
		{args: []string{"--keep-within", "36h", "--keep-last", "1"}},
		{args: []string{"--keep-within-hourly", "2d", "--keep-within-daily", "1m", "--keep-within-weekly", "6m", "--keep-within-monthly", "2y", "--keep-within-yearly", "5y"}},
		{args: []string{"--keep-within-weekly", "3m", "--keep-monthly", "4"}},
		{args: []string{"--keep-tag", "manual"}},
		{args: []string{"--keep-tag", "weekly,manual", "--keep-tag", "daily", "--keep-last", "2"}},
		{args: []string{"--keep-tag", "", "--keep-last", "1"}}, // the empty tag: snapshots without tags
		{args: []string{"--group-by", "", "--keep-weekly", "10"}},
		{args: []string{"--group-by", "tags", "--keep-daily", "3"}},
		{args: []string{"--group-by", "host", "--keep-monthly", "6"}},
		{args: []string{"--group-by", "paths,tags", "--keep-last", "3", "--keep-yearly", "2"}},
		{args: []string{"--group-by", "host,paths,tags", "--keep-monthly", "2", "--keep-within", "10d"}},
		{args: []string{"--host", "alpha", "--keep-weekly", "3"}},
		{args: []string{"--host", "beta", "--host", "gamma", "--group-by", "host", "--keep-daily", "4"}},
		{args: []string{"--tag", "daily", "--keep-weekly", "2"}},
		{args: []string{"--tag", "weekly,manual", "--tag", "daily", "--keep-monthly", "3"}},
		{args: []string{"--path", "/srv/data", "--keep-daily", "5"}},
		{args: []string{"--path", "/home", "--path", "/etc", "--keep-yearly", "unlimited"}},
		{args: []string{"--unsafe-allow-remove-all", "--host", "gamma"}}, // empty policy with a filter: all go
		{args: []string{"--compact", "--keep-last", "0", "--keep-daily", "1"}},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			args := append([]string{"forget", "--dry-run", "--json"}, c.args...)
			start := time.Now()
			mine := tl.r.ok(args...).stdout
			mineTime += time.Since(start)
			res := tl.o.MustRun(tl.dir, args...)
			theirTime += res.Duration
			theirs := string(res.Stdout)
			mg, tg := forgetGroups(t, mine), forgetGroups(t, theirs)
			if !sameForgetJSON(t, mine, theirs) {
				t.Fatalf("differs from restic: %s", describeForgetDiff(mg, tg))
			}
			kept, removed := 0, 0
			for _, g := range mg {
				kept += len(g.Keep)
				removed += len(g.Remove)
				if len(g.Reasons) != len(g.Keep) {
					t.Errorf("group %s: %d reasons for %d kept", g.Host, len(g.Reasons), len(g.Keep))
				}
			}
			t.Logf("%d groups, %d kept, %d removed", len(mg), kept, removed)
			// Each policy must decide something, or the comparison proves little.
			if removed == 0 && !c.allKept {
				t.Errorf("nothing removed")
			}
			if kept == 0 && !slices.Contains(c.args, "--unsafe-allow-remove-all") {
				t.Errorf("nothing kept")
			}
		})
	}
}

// TestForgetRemovesLikeRestic runs a real forget: afterwards restic lists
// exactly the snapshots restic's dry run would keep, and checks clean.
func TestForgetRemovesLikeRestic(t *testing.T) {
	t.Parallel()
	tl := newTimeline(t)
	policy := []string{"--keep-daily", "7", "--keep-weekly", "5", "--keep-monthly", "12", "--keep-yearly", "2", "--keep-tag", "manual"}
	var want []string
	for _, g := range tl.o.ForgetDryRunJSON(tl.dir, policy...) {
		for _, sn := range g.Keep {
			want = append(want, sn.ID)
		}
	}
	sort.Strings(want)
	if len(want) == 0 || len(want) == len(tl.ids) {
		t.Fatalf("policy keeps %d of %d", len(want), len(tl.ids))
	}

	res := tl.r.ok(append([]string{"forget"}, policy...)...)
	if !strings.HasPrefix(res.stdout, "Applying Policy: keep 7 daily, 5 weekly, 12 monthly, 2 yearly snapshots and all snapshots with tags [[manual]]\n") {
		t.Errorf("output starts wrong:\n%s", res.stdout)
	}
	if strings.Contains(res.stdout, "Would have removed") {
		t.Errorf("a real run printed the dry-run line:\n%s", res.stdout)
	}
	var got []string
	for _, sn := range tl.o.Snapshots(tl.dir) {
		got = append(got, sn.ID)
	}
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Fatalf("restic lists %d snapshots after cairn forget, want the %d kept", len(got), len(want))
	}
	tl.o.MustCheck(tl.dir, false)
	if locks := lockFiles(t, tl.dir); len(locks) != 0 {
		t.Errorf("locks left: %v", locks)
	}
	// The same policy again removes nothing more.
	again := forgetGroups(t, tl.r.ok(append([]string{"forget", "--json"}, policy...)...).stdout)
	for _, g := range again {
		if len(g.Remove) != 0 {
			t.Errorf("second run removes %d in %s", len(g.Remove), g.Host)
		}
	}

	// Explicit IDs (full and prefix) go without a policy, like restic's.
	victim, prefix := want[0], want[1][:8]
	dry := tl.r.ok("forget", "--dry-run", victim, prefix).stdout
	rdry := string(tl.o.MustRun(tl.dir, "forget", "--dry-run", victim, prefix).Stdout)
	if dry != rdry || !strings.Contains(dry, victim[:8]) {
		t.Errorf("explicit dry run:\ncairn:\n%s\nrestic:\n%s", dry, rdry)
	}
	tl.r.ok("forget", victim, prefix)
	left := tl.o.Snapshots(tl.dir)
	if len(left) != len(want)-2 {
		t.Errorf("%d snapshots left after removing 2 of %d", len(left), len(want))
	}
	for _, sn := range left {
		if sn.ID == victim || strings.HasPrefix(sn.ID, prefix) {
			t.Errorf("snapshot %s still there", sn.ID)
		}
	}
	tl.o.MustCheck(tl.dir, false)
}

// TestForgetTextLikeRestic compares the tables, with reasons, for one
// group (restic prints several groups in random order).
func TestForgetTextLikeRestic(t *testing.T) {
	t.Parallel()
	tl := newTimeline(t)
	one := []string{"forget", "--dry-run", "--host", "alpha", "--path", "/home"} // one group
	for _, args := range [][]string{
		slices.Concat(one, []string{"--keep-monthly", "3", "--keep-within-weekly", "1m", "--keep-tag", "daily"}),
		slices.Concat(one, []string{"-v", "--keep-daily", "3", "--keep-yearly", "unlimited"}),
		slices.Concat(one, []string{"--compact", "--keep-weekly", "4"}),
		slices.Concat(one, []string{"-q", "--keep-last", "1"}),
		// one host and tag set: grouped by tags, the header and sorted tags
		{"forget", "--dry-run", "-v", "--host", "gamma", "--tag", "weekly,manual", "--group-by", "host,tags", "--keep-last", "2"},
	} {
		mine := tl.r.ok(args...).stdout
		theirs := string(tl.o.MustRun(tl.dir, args...).Stdout)
		if mine != theirs {
			t.Errorf("%v differs from restic's at line %s", args, firstDiff(mine, theirs))
		}
		if !slices.Contains(args, "-q") && !strings.Contains(mine, "Would have removed the following snapshots:") {
			t.Errorf("%v: nothing would be removed:\n%s", args, mine)
		}
	}
}

// TestForgetRefusesLikeRestic: invalid values and dangerous policies are
// refused with restic's messages and exit status, before anything is
// removed.
func TestForgetRefusesLikeRestic(t *testing.T) {
	tl := newTimeline(t)
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--keep-last", "-1"}, `invalid argument "-1" for "-l, --keep-last" flag: negative values not allowed, use 'unlimited' instead`},
		{[]string{"--keep-daily", "-3"}, `invalid argument "-3" for "-d, --keep-daily" flag: negative values not allowed, use 'unlimited' instead`},
		{[]string{"--keep-weekly", "many"}, `invalid argument "many" for "-w, --keep-weekly" flag: strconv.ParseInt: parsing "many": invalid syntax`},
		{[]string{"--keep-within", "1x"}, `invalid argument "1x" for "--keep-within" flag: invalid unit 'x' found after number 1`},
		{[]string{"--keep-within-daily", "5"}, `invalid argument "5" for "--keep-within-daily" flag: no unit found after number 5`},
		{[]string{"--keep-within-yearly", "y"}, `invalid argument "y" for "--keep-within-yearly" flag: no number found`},
		{[]string{"--keep-within", "-1d"}, "durations containing negative values are not allowed for --keep-within*"},
		{[]string{"--group-by", "owner", "--keep-last", "1"}, `invalid argument "owner" for "-g, --group-by" flag: unknown grouping option: "owner"`},
		{nil, "no policy was specified, no snapshots will be removed"},
		{[]string{"--unsafe-allow-remove-all"}, "--unsafe-allow-remove-all is not allowed unless a snapshot filter option is specified"},
		{[]string{"--no-lock", "--keep-last", "1"}, "--no-lock is only applicable in combination with --dry-run for forget command"},
		{[]string{"--host", "alpha", "--path", "/srv/data", "--keep-tag", "nonexistent"}, `refusing to delete last snapshot of snapshot group "host alpha, path [/srv/data]"`},
	} {
		args := append([]string{"forget"}, c.args...)
		theirs := tl.o.Run(tl.dir, args...)
		mine := tl.r.run(args...)
		if theirs.ExitCode != 1 || mine.code != 1 {
			t.Errorf("%v: exit %d, restic %d\n%s", args, mine.code, theirs.ExitCode, mine)
		}
		if !strings.Contains(string(theirs.Stderr), c.msg) {
			t.Errorf("%v: restic says %q, not %q", args, theirs.Stderr, c.msg)
		}
		if !strings.Contains(mine.stderr, c.msg) {
			t.Errorf("%v: cairn says %q, want %q", args, mine.stderr, c.msg)
		}
	}
	// Deliberately stricter than restic, which removes the named snapshots
	// and ignores the policy.
	res := tl.r.expect(1, "forget", "--keep-last", "5", tl.ids[1])
	if !strings.Contains(res.stderr, "snapshot IDs and --keep-* options cannot be combined") {
		t.Errorf("IDs with a policy: %s", res)
	}
	// Prune flags are checked before anything is removed, as in restic.
	res = tl.r.expect(1, "forget", "--keep-last", "1", "--prune", "--max-unused", "100%")
	if !strings.Contains(res.stderr, "percentage for --max-unused must be below 100%") {
		t.Errorf("--prune --max-unused 100%%: %s", res)
	}
	if n := len(tl.o.Snapshots(tl.dir)); n != len(tl.ids) {
		t.Errorf("%d of %d snapshots left after refusals", n, len(tl.ids))
	}
}

// A repository without snapshots: nothing to print in JSON, like restic.
func TestForgetEmptyRepository(t *testing.T) {
	dir := newRepo(t)
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir)
	o := oracleFor(t)
	for _, args := range [][]string{
		{"forget", "--json", "--keep-last", "1"},
		{"forget", "--keep-last", "1"},
	} {
		mine := r.ok(args...).stdout
		theirs := string(o.MustRun(dir, args...).Stdout)
		if mine != theirs {
			t.Errorf("%v: cairn %q, restic %q", args, mine, theirs)
		}
	}
}

// randomPolicy draws a forget command line: some counts (a few
// unlimited), keep-within durations, keep-tags, a grouping and a filter.
func randomPolicy(rng *rand.Rand) []string {
	var args []string
	policy := false
	for _, f := range []string{"--keep-last", "--keep-hourly", "--keep-daily", "--keep-weekly", "--keep-monthly", "--keep-yearly"} {
		if rng.Float64() < 0.3 {
			v := fmt.Sprint(rng.IntN(25))
			if rng.Float64() < 0.1 {
				v = "unlimited"
			}
			args = append(args, f, v)
			policy = true
		}
	}
	for _, f := range []string{"--keep-within", "--keep-within-hourly", "--keep-within-daily", "--keep-within-weekly", "--keep-within-monthly", "--keep-within-yearly"} {
		if rng.Float64() < 0.2 {
			var d string
			for _, unit := range []string{"y", "m", "d", "h"} {
				if rng.Float64() < 0.4 {
					d += fmt.Sprint(1+rng.IntN(30)) + unit
				}
			}
			if d == "" {
				d = fmt.Sprint(1+rng.IntN(90)) + "d"
			}
			args = append(args, f, d)
			policy = true
		}
	}
	if rng.Float64() < 0.25 {
		args = append(args, "--keep-tag", []string{"manual", "daily", "weekly,manual", ""}[rng.IntN(4)])
	}
	if !policy {
		// A keep-tag alone may keep nothing in some group, and restic
		// names that group from a random order: keep the refusal out.
		args = append(args, "--keep-last", fmt.Sprint(1+rng.IntN(10)))
	}
	if rng.Float64() < 0.4 {
		var g []string
		for _, part := range []string{"host", "paths", "tags"} {
			if rng.Float64() < 0.5 {
				g = append(g, part)
			}
		}
		args = append(args, "--group-by", strings.Join(g, ","))
	}
	switch rng.IntN(6) {
	case 0:
		args = append(args, "--host", []string{"alpha", "beta", "gamma"}[rng.IntN(3)])
	case 1:
		args = append(args, "--tag", []string{"manual", "daily", "weekly", "daily,manual"}[rng.IntN(4)])
	case 2:
		args = append(args, "--path", []string{"/srv/data", "/home", "/var/lib"}[rng.IntN(3)])
	}
	return args
}

// TestForgetRandomPoliciesLikeRestic compares drawn policies (seeded, so
// a failure repeats) beyond the hand-picked table.
func TestForgetRandomPoliciesLikeRestic(t *testing.T) {
	t.Parallel()
	tl := newTimeline(t)
	rng := rand.New(rand.NewPCG(19, 2026))
	decided := 0 // policies that kept some snapshots and removed others
	for range 30 {
		args := append([]string{"forget", "--dry-run", "--json"}, randomPolicy(rng)...)
		mine := tl.r.run(args...)
		theirs := tl.o.Run(tl.dir, args...)
		if mine.code != theirs.ExitCode {
			t.Errorf("%q: exit %d, restic %d\n%s\nrestic: %s", args, mine.code, theirs.ExitCode, mine, theirs.Stderr)
			continue
		}
		if mine.code != 0 {
			t.Errorf("%q failed for both: %s", args, mine.stderr)
			continue
		}
		if !sameForgetJSON(t, mine.stdout, string(theirs.Stdout)) {
			t.Errorf("%q differs from restic: %s", args, describeForgetDiff(forgetGroups(t, mine.stdout), forgetGroups(t, string(theirs.Stdout))))
		}
		kept, removed := 0, 0
		for _, g := range forgetGroups(t, mine.stdout) {
			kept += len(g.Keep)
			removed += len(g.Remove)
		}
		t.Logf("%q: %d kept, %d removed", args[3:], kept, removed)
		if kept > 0 && removed > 0 {
			decided++
		}
	}
	if decided < 20 {
		t.Errorf("only %d of 30 policies both kept and removed snapshots", decided)
	}
}

// forget takes an exclusive lock: it waits for nobody, and a dry run with
// --no-lock works on a locked repository.
func TestForgetLocking(t *testing.T) {
	tl := newTimeline(t)
	rp := openRepo(t, tl.dir)
	_, held, err := rp.Lock(context.Background(), false, repo.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res := tl.r.expect(exitLocked, "forget", "--keep-last", "1")
	if !strings.Contains(res.stderr, "locked") {
		t.Errorf("locked repository: %s", res)
	}
	tl.r.expect(exitLocked, "forget", "--dry-run", "--keep-last", "1")
	dry := tl.r.ok("forget", "--dry-run", "--no-lock", "--json", "--keep-last", "1")
	if len(forgetGroups(t, dry.stdout)) == 0 {
		t.Errorf("--no-lock dry run printed no groups: %s", dry)
	}
	if err := held.Unlock(); err != nil {
		t.Fatal(err)
	}
	if n := len(tl.o.Snapshots(tl.dir)); n != len(tl.ids) {
		t.Errorf("%d of %d snapshots left", n, len(tl.ids))
	}
}

// $RESTIC_HOST is the default --host filter, and --host "" lifts it.
func TestForgetResticHost(t *testing.T) {
	tl := newTimeline(t)
	o := tl.o.WithEnv("RESTIC_HOST=gamma")
	r := tl.r.with("RESTIC_HOST=gamma")
	for _, args := range [][]string{
		{"forget", "--dry-run", "--json", "--keep-monthly", "2"},
		{"forget", "--dry-run", "--json", "--keep-monthly", "2", "--host", ""},
		{"forget", "--dry-run", "--json", "--unsafe-allow-remove-all"},
	} {
		mine := r.ok(args...).stdout
		theirs := string(o.MustRun(tl.dir, args...).Stdout)
		if !sameForgetJSON(t, mine, theirs) {
			t.Errorf("%q differs from restic: %s", args, describeForgetDiff(forgetGroups(t, mine), forgetGroups(t, theirs)))
		}
		hosts := map[string]bool{}
		for _, g := range forgetGroups(t, mine) {
			hosts[g.Host] = true
		}
		if slices.Contains(args, "--host") != (len(hosts) > 1) {
			t.Errorf("%q: groups of hosts %v", args, hosts)
		}
	}
}

// Snapshot files that cannot be deleted (an append-only rest-server) are
// reported one by one and end the run with exit status 3, like restic;
// nothing is lost and the lock is gone.
func TestForgetRemoveRefusedByServer(t *testing.T) {
	tl := newTimeline(t)
	srv := testserver.RestServer(t, testserver.RestOptions{AppendOnly: true})
	if err := os.CopyFS(filepath.Join(srv.DataDir, "forget"), os.DirFS(tl.dir)); err != nil {
		t.Fatal(err)
	}
	loc := srv.Repo("", "", "forget")
	args := []string{"forget", "--host", "gamma", "--keep-last", "10"}
	// One connection for restic: its forget records failed removals in a
	// map from several goroutines, which crashes it now and then ("fatal
	// error: concurrent map writes", restic 0.19.1 cmd_forget.go) when
	// the server refuses them all.
	theirs := tl.o.Run(loc, append([]string{"-o", "rest.connections=1"}, args...)...)
	mine := tl.r.with("RESTIC_REPOSITORY=" + loc).run(args...)
	if theirs.ExitCode != exitIncomplete || mine.code != exitIncomplete {
		t.Fatalf("exit %d, restic %d\n%s\nrestic: %s", mine.code, theirs.ExitCode, mine, theirs.Stderr)
	}
	if n := strings.Count(mine.stderr, "unable to remove snapshot/"); n == 0 || n != strings.Count(string(theirs.Stderr), "unable to remove snapshot/") {
		t.Errorf("cairn reported %d failed removals, restic %d:\n%s", n, strings.Count(string(theirs.Stderr), "unable to remove snapshot/"), mine.stderr)
	}
	if !strings.Contains(mine.stderr, "failed to remove one or more snapshots") {
		t.Errorf("no final error: %s", mine.stderr)
	}
	if n := len(tl.o.Snapshots(loc)); n != len(tl.ids) {
		t.Errorf("%d of %d snapshots left", n, len(tl.ids))
	}
	if locks, _ := os.ReadDir(filepath.Join(srv.DataDir, "forget", "locks")); len(locks) != 0 {
		t.Errorf("%d locks left", len(locks))
	}
}
