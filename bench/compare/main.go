// Command compare times cairn against restic on the same data in one run and
// prints the table of docs/benchmarks.md. For each data set (bench/gen's
// "mixed", about 1.2 GB in 20,000 files, and "small", 200,000 files of a few
// hundred bytes) and each round it backs up into a fresh repository per tool
// (initial backup), backs up again (unchanged re-backup), rewrites 1 % of the
// files (bench/gen -kind change), backs up again (1 %-changed re-backup),
// restores the latest snapshot into an empty directory, and puts the data set
// back (bench/gen -kind revert). Every step runs cairn and restic back to
// back, each after reading the data set and its repository into the page
// cache and writing back all dirty data (sync); which of them goes first
// alternates from round to round, so that a neighbour's load favours
// neither. Restore targets are kept until the end of the run.
//
// Both tools get the same flags (cairn's CLI is restic's), the same
// compression and version 2 repositories, which compare checks with restic
// itself; restic also checks cairn's repository after the first round.
// Reported are wall time, CPU time (user+sys, less sensitive to other load on
// the machine) and peak RSS, each as the median over the rounds, the median
// of the per-round cairn/restic ratios, and the repository sizes.
//
// Run it from the module root:
//
//	go run ./bench/compare -work /var/tmp/cairn-bench -rounds 3
//
// Without -cairn it builds ./cmd/cairn; without -restic it asks
// scripts/build-tool for restic 0.19.1. Data sets are generated once into
// WORK/data and reused.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// genVersion names the generator's output; bump it when bench/gen changes
// what it writes, so old data sets are regenerated.
const genVersion = "v2"

type measure struct {
	wall, cpu time.Duration
	rssKiB    int64
}

type tool struct{ name, bin string }

// env is one tool's environment for one repository.
func env(work, set string, t tool) []string {
	return []string{
		"RESTIC_PASSWORD=bench",
		"RESTIC_REPOSITORY=" + filepath.Join(work, "repo-"+set+"-"+t.name),
		"RESTIC_CACHE_DIR=" + filepath.Join(work, "cache-"+set+"-"+t.name),
	}
}

// run runs one command and measures it. Its rusage covers the process and
// every child it waited for (cairn's unprivileged restore helper, for one).
func run(env []string, name string, args ...string) (measure, []byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		// Exit status 3 (some files unreadable) cannot happen on generated
		// data; anything else is a failed benchmark.
		return measure{}, nil, fmt.Errorf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, stderr.String())
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return measure{}, nil, errors.New("no rusage for the child (not Linux?)")
	}
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return measure{wall: wall, cpu: cpu, rssKiB: ru.Maxrss}, stdout.Bytes(), nil
}

func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			n += fi.Size()
		}
		return nil
	})
	return n, err
}

// goTool runs a helper from this module with its output on stderr.
func goTool(args ...string) error {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// ensureData generates a data set unless the marker of the current
// generator version says it is complete. The marker lives next to the tree,
// not in it, so that it is not part of what is backed up.
func ensureData(gen, dataDir, set string) error {
	dir := filepath.Join(dataDir, set)
	marker := filepath.Join(dataDir, set+"."+genVersion+".complete")
	if _, err := os.Stat(marker); err == nil {
		return nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	log.Printf("generating %s into %s", set, dir)
	if err := goTool(gen, "-kind", set, "-out", dir); err != nil {
		return err
	}
	return os.WriteFile(marker, nil, 0o644)
}

// warm reads every file under the given directories (those that exist)
// with a few goroutines, to bring them into the page cache.
func warm(dirs ...string) error {
	paths := make(chan string, 256)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 1<<20)
			for p := range paths {
				f, err := os.Open(p)
				if err != nil {
					select {
					case errs <- err:
					default:
					}
					continue
				}
				for {
					if _, err := f.Read(buf); err != nil {
						break
					}
				}
				f.Close()
			}
		}()
	}
	var walkErr error
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, os.ErrNotExist) {
					return nil
				}
				return err
			}
			if d.Type().IsRegular() {
				paths <- p
			}
			return nil
		})
		if err != nil && walkErr == nil {
			walkErr = fmt.Errorf("warm %s: %w", dir, err)
		}
	}
	close(paths)
	wg.Wait()
	select {
	case err := <-errs:
		return fmt.Errorf("warm: %w", err)
	default:
	}
	return walkErr
}

// repoVersion asks restic for a repository's format version.
func repoVersion(restic tool, e []string) (int, error) {
	_, out, err := run(e, restic.bin, "cat", "config")
	if err != nil {
		return 0, err
	}
	var cfg struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		return 0, fmt.Errorf("decode config: %w", err)
	}
	return cfg.Version, nil
}

func main() {
	log.SetFlags(0)
	work := flag.String("work", "/var/tmp/cairn-bench", "work directory (data sets, repositories, restores); keep it outside the checkout")
	cairnBin := flag.String("cairn", "", "cairn binary (default: build ./cmd/cairn)")
	resticBin := flag.String("restic", "", "restic binary (default: scripts/build-tool restic)")
	rounds := flag.Int("rounds", 2, "repeat everything this many times; medians are reported")
	compression := flag.String("compression", "auto", "compression for both tools (auto, off, max, fastest, better)")
	setsFlag := flag.String("sets", "mixed,small", "data sets to run, comma-separated")
	check := flag.Bool("check", true, "run restic check on cairn's repositories after the first round")
	flag.Parse()
	if err := os.MkdirAll(filepath.Join(*work, "bin"), 0o755); err != nil {
		log.Fatal(err)
	}
	gen := filepath.Join(*work, "bin", "gen")
	if err := goTool("go", "build", "-o", gen, "./bench/gen"); err != nil {
		log.Fatal(err)
	}
	if *cairnBin == "" {
		*cairnBin = filepath.Join(*work, "bin", "cairn")
		if err := goTool("go", "build", "-o", *cairnBin, "./cmd/cairn"); err != nil {
			log.Fatal(err)
		}
	}
	if *resticBin == "" {
		out, err := exec.Command("scripts/build-tool", "restic").Output()
		if err != nil {
			log.Fatalf("scripts/build-tool restic: %v", err)
		}
		*resticBin = strings.TrimSpace(string(out))
	}
	cairn, restic := tool{"cairn", *cairnBin}, tool{"restic", *resticBin}
	sets := strings.Split(*setsFlag, ",")
	dataDir := filepath.Join(*work, "data")
	for _, s := range sets {
		if s != "mixed" && s != "small" {
			log.Fatalf("unknown data set %q", s)
		}
		if err := ensureData(gen, dataDir, s); err != nil {
			log.Fatalf("generate %s: %v", s, err)
		}
	}

	// Targets left by an interrupted run.
	if err := os.RemoveAll(restoreDir(*work)); err != nil {
		log.Fatal(err)
	}
	res := newResults()
	for round := 0; round < *rounds; round++ {
		tools := []tool{cairn, restic}
		if round%2 == 1 {
			tools = []tool{restic, cairn}
		}
		for _, set := range sets {
			if err := runSet(*work, set, round, tools, restic, *compression, *check && round == 0, res); err != nil {
				log.Fatal(err)
			}
		}
	}
	res.print(os.Stdout, sets, *rounds, *compression)
	if err := os.RemoveAll(restoreDir(*work)); err != nil {
		log.Fatal(err)
	}
}

// restoreDir holds the restore targets of a run.
func restoreDir(work string) string { return filepath.Join(work, "restores") }

// runSet runs every step on one data set in one round.
func runSet(work, set string, round int, tools []tool, restic tool, compression string, check bool, res *results) error {
	data := filepath.Join(work, "data", set)
	saved := filepath.Join(work, "orig-"+set)
	gen := filepath.Join(work, "bin", "gen")
	if err := goTool(gen, "-kind", "revert", "-out", data, "-save", saved); err != nil {
		return err
	}
	for _, t := range tools {
		e := env(work, set, t)
		for _, v := range e[1:] {
			if err := os.RemoveAll(strings.SplitN(v, "=", 2)[1]); err != nil {
				return err
			}
		}
		if _, _, err := run(e, t.bin, "init", "--repository-version", "2"); err != nil {
			return err
		}
	}
	step := func(name string, args func(t tool) []string) error {
		for _, t := range tools {
			// What the step reads comes from the page cache for both
			// tools: the first of a pair must not pay cold reads that
			// the second is spared (this machine evicts the cache fast).
			if err := warm(data, filepath.Join(work, "repo-"+set+"-"+t.name), filepath.Join(work, "cache-"+set+"-"+t.name)); err != nil {
				return err
			}
			// Write back what earlier steps left dirty (the other tool's
			// repository or restore), so that the kernel does not flush
			// it during this run.
			syscall.Sync()
			m, _, err := run(env(work, set, t), t.bin, args(t)...)
			if err != nil {
				return err
			}
			res.add(set, name, t.name, m)
			log.Printf("round %d %-6s %-26s %-6s wall %7.2fs cpu %7.2fs rss %5d MiB", round+1, set, name, t.name, m.wall.Seconds(), m.cpu.Seconds(), m.rssKiB/1024)
		}
		return nil
	}
	backup := func(tool) []string {
		return []string{"backup", "-q", "--host", "bench", "--compression", compression, data}
	}
	if err := step(stepInitial, backup); err != nil {
		return err
	}
	for _, t := range tools {
		v, err := repoVersion(restic, env(work, set, t))
		if err != nil {
			return fmt.Errorf("%s repository: %w", t.name, err)
		}
		if v != 2 {
			return fmt.Errorf("%s made a version %d repository: compression is not comparable", t.name, v)
		}
	}
	if err := step(stepUnchanged, backup); err != nil {
		return err
	}
	if err := goTool(gen, "-kind", "change", "-seed", fmt.Sprint(round+2), "-out", data, "-save", saved); err != nil {
		return err
	}
	if err := step(stepChanged, backup); err != nil {
		return err
	}
	sizes := map[string]int64{}
	for _, t := range tools {
		n, err := dirSize(filepath.Join(work, "repo-"+set+"-"+t.name))
		if err != nil {
			return err
		}
		sizes[t.name] = n
	}
	res.addSize(set, sizes["cairn"], sizes["restic"])
	// Each restore gets a target of its own, and all are removed at the
	// end of the run: on this machine's ext4 (no journal) creating files
	// soon after deleting many costs both tools up to 15 % more kernel time
	// (the inode allocator skips recently deleted inodes), a cost of the
	// benchmark's clean-up, not of restoring.
	err := step(stepRestore, func(t tool) []string {
		return []string{"restore", "-q", "latest", "--target", filepath.Join(restoreDir(work), fmt.Sprintf("%s-%s-%d", set, t.name, round+1))}
	})
	if err != nil {
		return err
	}
	if check {
		if _, _, err := run(env(work, set, tool{name: "cairn"}), restic.bin, "check", "-q"); err != nil {
			return fmt.Errorf("restic check of cairn's %s repository: %w", set, err)
		}
		log.Printf("restic check of cairn's %s repository: no errors", set)
	}
	return goTool(gen, "-kind", "revert", "-out", data, "-save", saved)
}

const (
	stepInitial   = "initial backup"
	stepUnchanged = "unchanged re-backup"
	stepChanged   = "1% changed re-backup"
	stepRestore   = "restore"
)

var steps = []string{stepInitial, stepUnchanged, stepChanged, stepRestore}

// target returns issue 2's wall-time target for a step (0: none).
func target(set, step string) float64 {
	switch {
	case step == stepInitial:
		return 0.6
	case step == stepUnchanged && set == "small":
		return 0.4
	case step == stepRestore:
		return 0.7
	}
	return 0
}

type results struct {
	m     map[string]map[string][]measure // set/step → tool → rounds
	sizes map[string][][2]int64           // set → rounds of (cairn, restic)
}

func newResults() *results {
	return &results{m: map[string]map[string][]measure{}, sizes: map[string][][2]int64{}}
}

func (r *results) add(set, step, tool string, m measure) {
	k := set + "/" + step
	if r.m[k] == nil {
		r.m[k] = map[string][]measure{}
	}
	r.m[k][tool] = append(r.m[k][tool], m)
}

func (r *results) addSize(set string, cairn, restic int64) {
	r.sizes[set] = append(r.sizes[set], [2]int64{cairn, restic})
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func (r *results) print(w *os.File, sets []string, rounds int, compression string) {
	fmt.Fprintf(w, "Medians of %d round(s), compression %s. Ratios are cairn/restic (median of the per-round ratios); lower is better.\n\n", rounds, compression)
	fmt.Fprintf(w, "| data set | step | cairn wall | restic wall | wall ratio | target | cairn CPU | restic CPU | CPU ratio | cairn RSS | restic RSS | RSS ratio |\n")
	fmt.Fprintf(w, "|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|\n")
	for _, set := range sets {
		for _, step := range steps {
			ms := r.m[set+"/"+step]
			c, rs := ms["cairn"], ms["restic"]
			if len(c) == 0 || len(c) != len(rs) {
				continue
			}
			var cw, rw, cc, rc, cr, rr, wr, cpr, rsr []float64
			for i := range c {
				cw = append(cw, c[i].wall.Seconds())
				rw = append(rw, rs[i].wall.Seconds())
				cc = append(cc, c[i].cpu.Seconds())
				rc = append(rc, rs[i].cpu.Seconds())
				cr = append(cr, float64(c[i].rssKiB)/1024)
				rr = append(rr, float64(rs[i].rssKiB)/1024)
				wr = append(wr, c[i].wall.Seconds()/rs[i].wall.Seconds())
				cpr = append(cpr, c[i].cpu.Seconds()/rs[i].cpu.Seconds())
				rsr = append(rsr, float64(c[i].rssKiB)/float64(rs[i].rssKiB))
			}
			tgt := "—"
			if t := target(set, step); t > 0 {
				verdict := "met"
				if median(wr) > t {
					verdict = "**missed**"
				}
				tgt = fmt.Sprintf("≤ %.1f× %s", t, verdict)
			}
			rssVerdict := ""
			if median(rsr) > 1 {
				rssVerdict = " **over**"
			}
			fmt.Fprintf(w, "| %s | %s | %.2f s | %.2f s | **%.2f×** | %s | %.1f s | %.1f s | %.2f× | %.0f MiB | %.0f MiB | %.2f×%s |\n",
				set, step, median(cw), median(rw), median(wr), tgt, median(cc), median(rc), median(cpr), median(cr), median(rr), median(rsr), rssVerdict)
		}
	}
	fmt.Fprintf(w, "\nRepository size after the three backups (target: cairn ≤ 1.02× restic):\n\n")
	for _, set := range sets {
		var c, rs, ratio []float64
		for _, s := range r.sizes[set] {
			c = append(c, float64(s[0]))
			rs = append(rs, float64(s[1]))
			ratio = append(ratio, float64(s[0])/float64(s[1]))
		}
		verdict := "met"
		if median(ratio) > 1.02 {
			verdict = "**missed**"
		}
		fmt.Fprintf(w, "- %s: cairn %.1f MiB, restic %.1f MiB, %.3f× (%s)\n", set, median(c)/(1<<20), median(rs)/(1<<20), median(ratio), verdict)
	}
}
