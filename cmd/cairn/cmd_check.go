package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cairn-backup/cairn/internal/units"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/check"
)

type checkOptions struct {
	readData       bool
	readDataSubset string
	withCache      bool
	// filter and the arguments select snapshots, as in restic 0.19.
	filter snapshotFilterFlags
	args   []string
}

// filtered reports whether only some snapshots are checked.
func (o checkOptions) filtered() bool { return len(o.args) > 0 || !o.filter.empty() }

func newCheckCommand(a *app) *cobra.Command {
	var opts checkOptions
	cmd := &cobra.Command{
		Use:   "check [flags] [snapshot ID] [...]",
		Short: "Check the repository for errors",
		Long: `
The "check" command tests the repository for errors and reports any errors it
finds: index files that do not load, indexed packs that are missing or have
the wrong size, snapshots that do not load, and trees or data blobs that are
referenced but not indexed. Packs that no index lists are reported as a
non-critical hint. With --read-data (or --read-data-subset) the content of
the packs is downloaded and every blob is verified too.

Snapshot IDs or --host/--tag/--path limit the tree check to those snapshots,
and --read-data to the packs that hold their data.

Without --with-cache the local cache is not used, so that the data in the
repository itself is checked.

` + exitStatusHelp,
		DisableAutoGenTag: true,
		PreRunE: func(*cobra.Command, []string) error {
			_, err := parseReadDataSubset(opts.readDataSubset, opts.readData)
			return err
		},
		RunE: func(c *cobra.Command, args []string) error {
			opts.args = args
			return runCheck(c.Context(), a, opts)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&opts.readData, "read-data", false, "read all data blobs")
	f.StringVar(&opts.readDataSubset, "read-data-subset", "", "read a `subset` of data packs, specified as 'n/t' for specific part, or either 'x%' or 'x.y%' or a size in bytes with suffixes k/K, m/M, g/G, t/T for a random subset")
	var ignored bool
	f.BoolVar(&ignored, "check-unused", false, "find unused blobs")
	_ = f.MarkDeprecated("check-unused", "`--check-unused` is deprecated and will be ignored")
	f.BoolVar(&opts.withCache, "with-cache", false, "use existing cache, only read uncached data from repository")
	opts.filter.add(f, false)
	return cmd
}

// errRepoDamaged ends a check that found errors (exit status 1).
var errRepoDamaged = errors.New("repository contains errors")

// checkSummaryJSON is restic's summary message of check --json.
type checkSummaryJSON struct {
	MessageType     string   `json:"message_type"` // "summary"
	NumErrors       int      `json:"num_errors"`
	BrokenPacks     []string `json:"broken_packs"`
	HintRepairIndex bool     `json:"suggest_repair_index"`
	HintPrune       bool     `json:"suggest_prune"`
}

// checkErrorJSON is one error of check --json, on stderr.
type checkErrorJSON struct {
	MessageType string `json:"message_type"` // "error"
	Message     string `json:"message"`
}

// runCheck opens and exclusively locks the main repository and checks it.
func runCheck(ctx context.Context, a *app, opts checkOptions) error {
	if _, err := parseReadDataSubset(opts.readDataSubset, opts.readData); err != nil {
		return err
	}
	if !opts.withCache {
		// restic checks through a fresh temporary cache; reading straight
		// from the backend checks the same data.
		a.gopts.NoCache = true
	}
	if !a.gopts.NoLock {
		a.printer().P("create exclusive lock for repository")
	}
	// Exclusive like restic 0.19.1's check: a concurrent prune or backup
	// would make packs appear or vanish under the check.
	ctx, r, done, err := a.openLocked(ctx, true, true)
	if err != nil {
		if a.gopts.JSON {
			// Even a check that could not open the repository ends with
			// its summary, counting the failure.
			if jerr := a.term.printJSON(checkSummaryJSON{MessageType: "summary", NumErrors: 1}); jerr != nil {
				return errors.Join(err, jerr)
			}
		}
		return err
	}
	defer done()
	return runCheckWithRepo(ctx, a, r, opts)
}

// runCheckWithRepo checks r, which the caller opened and holds the lock
// check needs on (see runCheck); a command that already holds the
// repository, like migrate, checks it without opening it a second time.
func runCheckWithRepo(ctx context.Context, a *app, r *repo.Repository, opts checkOptions) (err error) {
	subset, err := parseReadDataSubset(opts.readDataSubset, opts.readData)
	if err != nil {
		return err
	}
	p := a.printer()
	summary := checkSummaryJSON{MessageType: "summary"}
	if a.gopts.JSON {
		defer func() {
			if err != nil && summary.NumErrors == 0 {
				summary.NumErrors = 1
			}
			if jerr := a.term.printJSON(summary); jerr != nil && err == nil {
				err = jerr
			}
		}()
	}
	// E prints an error: plain, or as a JSON message with --json.
	E := func(format string, args ...any) {
		if a.gopts.JSON {
			a.term.errorJSON(checkErrorJSON{MessageType: "error", Message: fmt.Sprintf(format, args...)})
			return
		}
		p.E(format, args...)
	}
	p.P("load indexes")
	copts := check.Options{ReadData: subset != nil, ReadFilter: subset}
	if opts.filtered() {
		copts.Select = func(ctx context.Context) ([]*repo.Snapshot, error) {
			return selectCheckSnapshots(ctx, r, &opts.filter, opts.args)
		}
	}
	stage := 0 // 0 index, 1 packs, 2 structure, 3 data
	errorsFound := false
	duplicates, mixedPacks := false, false
	orphans := 0
	advance := func(to int) {
		if stage <= 1 && to > 1 && orphans > 0 && !errorsFound {
			// After the pack stage, and only while nothing worse was found.
			p.P("%d additional files were found in the repo, which likely contain duplicate data.\nThis is non-critical, you can run `restic prune` to correct this.", orphans)
		}
		if stage == 0 && to > 0 && !a.gopts.JSON {
			// After the index stage, as restic does.
			if duplicates {
				p.S("Duplicate packs are non-critical, you can run `restic repair index' to correct this.")
			}
			if mixedPacks {
				p.S("Mixed packs with tree and data blobs are non-critical, you can run `restic prune` to correct this.")
			}
		}
		advanceStage(p, &stage, to, copts)
	}
	if subset != nil {
		copts.ReadFilter = func(all map[blob.ID]int64) map[blob.ID]int64 {
			sel := subset(all)
			advance(3)
			p.P("%s", readHeading(opts, len(sel), all))
			return sel
		}
	}
	report := func(pr check.Problem) {
		// Announce each stage before its first message, in restic's order
		// (the library runs the stages in that order too).
		advance(stageOf[pr.Kind])
		duplicates = duplicates || pr.Duplicate
		mixedPacks = mixedPacks || pr.Mixed
		switch {
		case pr.Kind == check.KindTree:
			E("error for tree %v:", pr.Tree.Str())
			for _, e := range pr.Errs {
				E("  %v", e)
			}
		case pr.Orphaned:
			orphans++
			p.V("%s", pr.Error())
		case pr.Hint:
			if !a.gopts.JSON {
				p.S("%s", pr.Error())
			}
		case pr.Kind == check.KindSnapshot || (pr.Kind == check.KindIndex && pr.Pack.IsNull()):
			E("error: %v", pr.Error())
		default:
			E("%v", pr.Error())
		}
		switch {
		case pr.Orphaned, pr.Mixed:
			summary.HintPrune = true
		case pr.Duplicate:
			summary.HintRepairIndex = true
		}
		if !pr.Hint {
			errorsFound = true
		}
	}
	if prev := debug.SetMemoryLimit(-1); prev == math.MaxInt64 {
		// Without GOMEMLIMIT, a soft limit sized from the index keeps
		// the peak memory near the live heap (see check.MemoryLimit).
		if limit, err := check.MemoryLimit(ctx, r, copts); err == nil {
			debug.SetMemoryLimit(limit)
			defer debug.SetMemoryLimit(prev)
		}
	}
	rep, err := check.Run(ctx, r, copts, report)
	if rep != nil {
		summary.NumErrors = rep.Errors
	}
	if err != nil {
		return err
	}
	if rep.IndexDamaged {
		summary.HintRepairIndex = true
		E("\nThe repository index is damaged and must be repaired. You must run `restic repair index' to correct this.\n")
		return errRepoDamaged
	}
	advance(3)
	if len(rep.BrokenPacks) > 0 {
		ids := make([]string, len(rep.BrokenPacks))
		for i, id := range rep.BrokenPacks {
			ids[i] = id.String()
		}
		summary.BrokenPacks = ids
		E("\nThe repository contains damaged pack files. These damaged files must be removed to repair the repository. This can be done using the following commands. Please read the troubleshooting guide at https://restic.readthedocs.io/en/stable/077_troubleshooting.html first.\n")
		E("restic repair packs %s\nrestic repair snapshots --forget\n", strings.Join(ids, " "))
	}
	if errorsFound || !rep.OK() {
		if len(rep.BrokenPacks) == 0 {
			E("\nThe repository is damaged and must be repaired. Please follow the troubleshooting guide at https://restic.readthedocs.io/en/stable/077_troubleshooting.html .\n")
		}
		return errRepoDamaged
	}
	p.P("no errors were found")
	return nil
}

var stageOf = map[check.Kind]int{
	check.KindIndex: 0, check.KindPack: 1, check.KindSnapshot: 2, check.KindTree: 2, check.KindData: 3,
}

// advanceStage prints the headings of the stages up to s that were not
// printed.
func advanceStage(p *printer, stage *int, s int, opts check.Options) {
	for *stage < s {
		*stage++
		switch *stage {
		case 1:
			p.P("check all packs")
		case 2:
			p.P("check snapshots, trees and blobs")
		}
	}
}

// totalBucketsMax bounds t in --read-data-subset=n/t: packs are put in
// buckets by their first byte.
const totalBucketsMax = 256

// parseReadDataSubset validates the flags and returns the pack filter for
// reading data, nil when no data is read.
func parseReadDataSubset(s string, all bool) (check.PackFilter, error) {
	if all && s != "" {
		return nil, errors.New("check flags --read-data and --read-data-subset cannot be used together")
	}
	if all {
		return func(m map[blob.ID]int64) map[blob.ID]int64 { return m }, nil
	}
	if s == "" {
		return nil, nil
	}
	invalid := errors.New("check flag --read-data-subset has invalid value, please see documentation")
	if parts := strings.Split(s, "/"); len(parts) > 1 || isUint(s) {
		if len(parts) != 2 || !isUint(parts[0]) || !isUint(parts[1]) {
			if len(parts) == 1 {
				// a plain number is a size in bytes
				return sizeFilter(s, invalid)
			}
			return nil, invalid
		}
		n, _ := strconv.ParseUint(parts[0], 10, 0)
		t, _ := strconv.ParseUint(parts[1], 10, 0)
		if n == 0 || t == 0 || n > t {
			return nil, errors.New("check flag --read-data-subset=n/t values must be positive integers, and n <= t, e.g. --read-data-subset=1/2")
		}
		if t > totalBucketsMax {
			return nil, fmt.Errorf("check flag --read-data-subset=n/t t must be at most %d", totalBucketsMax)
		}
		return func(m map[blob.ID]int64) map[blob.ID]int64 {
			out := make(map[blob.ID]int64)
			for id, size := range m {
				if uint64(id[0])%t == n-1 {
					out[id] = size
				}
			}
			return out
		}, nil
	}
	if pct, ok := strings.CutSuffix(s, "%"); ok {
		v, err := strconv.ParseFloat(pct, 64)
		if err != nil {
			return nil, invalid
		}
		if v <= 0 || v > 100 {
			return nil, errors.New("check flag --read-data-subset=x% x must be above 0.0% and at most 100.0%")
		}
		return func(m map[blob.ID]int64) map[blob.ID]int64 { return randomPacks(m, v) }, nil
	}
	return sizeFilter(s, invalid)
}

func isUint(s string) bool {
	_, err := strconv.ParseUint(s, 10, 0)
	return err == nil
}

func sizeFilter(s string, invalid error) (check.PackFilter, error) {
	want, err := units.ParseBytes(s)
	if err != nil {
		return nil, invalid
	}
	if want <= 0 {
		return nil, errors.New("check flag --read-data-subset=n n must be above 0")
	}
	return func(m map[blob.ID]int64) map[blob.ID]int64 {
		var total int64
		for _, size := range m {
			total += size
		}
		if total == 0 {
			return m
		}
		return randomPacks(m, float64(min(want, total))/float64(total)*100)
	}, nil
}

// randomPacks picks pct percent of the packs (at least one) at random.
func randomPacks(m map[blob.ID]int64, pct float64) map[blob.ID]int64 {
	n := int(float64(len(m)) * pct / 100)
	if len(m) > 0 && n < 1 {
		n = 1
	}
	ids := make([]blob.ID, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	out := make(map[blob.ID]int64, n)
	for _, i := range rand.Perm(len(ids))[:n] {
		out[ids[i]] = m[ids[i]]
	}
	return out
}

// readHeading says which packs are read, in restic's words.
func readHeading(opts checkOptions, selected int, all map[blob.ID]int64) string {
	s := opts.readDataSubset
	typ := "" // restic says "filtered data" when snapshots were selected
	if opts.filtered() {
		typ = "filtered "
	}
	switch {
	case opts.readData:
		return "read all " + typ + "data"
	case strings.Contains(s, "/"):
		n, t, _ := strings.Cut(s, "/")
		return fmt.Sprintf("read group #%s of %d %sdata packs (out of total %d packs in %s groups)", n, selected, typ, len(all), t)
	case strings.HasSuffix(s, "%"):
		v, _ := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
		return fmt.Sprintf("read %.1f%% of %spackfiles", v, typ)
	}
	var total int64
	for _, size := range all {
		total += size
	}
	want, _ := units.ParseBytes(s)
	want = min(want, total)
	pct := 100.0
	if total > 0 {
		pct = float64(want) / float64(total) * 100
	}
	return fmt.Sprintf("read %d bytes (%.1f%%) of %sdata packs", want, pct, typ)
}

// selectCheckSnapshots resolves the snapshots check is limited to. Unlike
// the other commands, which skip a snapshot they cannot find with a warning,
// restic's check fails the whole selection then: an error here is reported
// and no tree is checked.
func selectCheckSnapshots(ctx context.Context, r *repo.Repository, f *snapshotFilterFlags, args []string) ([]*repo.Snapshot, error) {
	return resolveSnapshots(ctx, r, f, args, func(_ string, err error) error { return err })
}
