// Command compare times cairn against restic on the same data in one run:
// initial backup, unchanged re-backup and 1 %-changed re-backup of the mixed
// data set, initial and unchanged backup of the 200k-small-files set, and a
// full restore. Both tools get the same flags (cairn's CLI is restic's) and
// the same compression. It prints a Markdown table with wall time, CPU time
// and peak RSS per step, the cairn/restic ratios, and the repository sizes.
//
//	go run ./bench/compare -work /var/tmp/cairn-bench -cairn ./cairn -restic $(scripts/build-tool restic)
package main

import (
	"bytes"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

type measure struct {
	wall, cpu time.Duration
	rssKiB    int64
}

func run(env []string, name string, args ...string) (measure, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdout = nil
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		// Exit status 3 (some files unreadable) does not happen on
		// generated data; anything else is a failed benchmark.
		return measure{}, fmt.Errorf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, stderr.String())
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return measure{wall: wall, cpu: cpu, rssKiB: ru.Maxrss}, nil
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

func main() {
	work := flag.String("work", "/var/tmp/cairn-bench", "work directory (data sets and repositories)")
	cairn := flag.String("cairn", "", "cairn binary")
	restic := flag.String("restic", "", "restic binary")
	rounds := flag.Int("rounds", 1, "repeat every step this many times and report the median")
	compression := flag.String("compression", "auto", "compression for both tools")
	skipSmall := flag.Bool("skip-small", false, "skip the 200k small files set")
	flag.Parse()
	if *cairn == "" || *restic == "" {
		log.Fatal("-cairn and -restic are required")
	}
	mixed := filepath.Join(*work, "data", "mixed")
	small := filepath.Join(*work, "data", "small")
	gen := func(kind, dir string) {
		if _, err := os.Stat(filepath.Join(dir, ".complete")); err == nil {
			return
		}
		os.RemoveAll(dir)
		cmd := exec.Command("go", "run", "./bench/gen", "-kind", kind, "-out", dir)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			log.Fatalf("generate %s: %v", kind, err)
		}
		_ = os.WriteFile(filepath.Join(dir, ".complete"), nil, 0o644)
	}
	gen("mixed", mixed)
	if !*skipSmall {
		gen("small", small)
	}

	type tool struct{ name, bin string }
	tools := []tool{{"cairn", *cairn}, {"restic", *restic}}
	results := map[string]map[string][]measure{}
	var order []string
	record := func(step, toolName string, m measure) {
		if results[step] == nil {
			results[step] = map[string][]measure{}
			order = append(order, step)
		}
		results[step][toolName] = append(results[step][toolName], m)
		fmt.Fprintf(os.Stderr, "%-28s %-7s wall %7.2fs cpu %7.2fs rss %6d MiB\n", step, toolName, m.wall.Seconds(), m.cpu.Seconds(), m.rssKiB/1024)
	}
	sizes := map[string]int64{}

	for round := 0; round < *rounds; round++ {
		repos := map[string]string{}
		for _, t := range tools {
			repo := filepath.Join(*work, "repo-"+t.name)
			os.RemoveAll(repo)
			repos[t.name] = repo
			env := []string{"RESTIC_PASSWORD=bench", "RESTIC_REPOSITORY=" + repo, "RESTIC_CACHE_DIR=" + filepath.Join(*work, "cache-"+t.name)}
			os.RemoveAll(filepath.Join(*work, "cache-"+t.name))
			if _, err := run(env, t.bin, "init"); err != nil {
				log.Fatal(err)
			}
		}
		step := func(name string, args func(t tool) []string) {
			for _, t := range tools {
				env := []string{"RESTIC_PASSWORD=bench", "RESTIC_REPOSITORY=" + repos[t.name], "RESTIC_CACHE_DIR=" + filepath.Join(*work, "cache-"+t.name)}
				m, err := run(env, t.bin, args(t)...)
				if err != nil {
					log.Fatal(err)
				}
				record(name, t.name, m)
			}
		}
		backup := func(dir string) func(tool) []string {
			return func(tool) []string {
				return []string{"backup", "-q", "--host", "bench", "--compression", *compression, dir}
			}
		}
		step("mixed: initial backup", backup(mixed))
		step("mixed: unchanged re-backup", backup(mixed))
		for _, t := range tools {
			sizes[t.name] = dirSize(repos[t.name])
		}
		// The change step rewrites 1 % of the files; both tools then back
		// up the same changed tree.
		cmd := exec.Command("go", "run", "./bench/gen", "-kind", "change", "-seed", fmt.Sprint(round+2), "-out", mixed)
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			log.Fatal(err)
		}
		step("mixed: 1% changed re-backup", backup(mixed))
		step("mixed: restore", func(t tool) []string {
			target := filepath.Join(*work, "restore-"+t.name)
			os.RemoveAll(target)
			return []string{"restore", "-q", "latest", "--target", target}
		})
		for _, t := range tools {
			os.RemoveAll(filepath.Join(*work, "restore-"+t.name))
		}
		if !*skipSmall {
			step("small: initial backup", backup(small))
			step("small: unchanged re-backup", backup(small))
		}
	}

	fmt.Printf("| step | cairn wall | restic wall | wall ratio | cairn CPU | restic CPU | cairn RSS | restic RSS | RSS ratio |\n")
	fmt.Printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range order {
		c, r := median(results[s]["cairn"]), median(results[s]["restic"])
		fmt.Printf("| %s | %.2f s | %.2f s | **%.2f×** | %.1f s | %.1f s | %d MiB | %d MiB | %.2f× |\n",
			s, c.wall.Seconds(), r.wall.Seconds(), c.wall.Seconds()/r.wall.Seconds(),
			c.cpu.Seconds(), r.cpu.Seconds(), c.rssKiB/1024, r.rssKiB/1024, float64(c.rssKiB)/float64(r.rssKiB))
	}
	fmt.Printf("\nRepository size after the mixed backups: cairn %d MiB, restic %d MiB (%.3f×)\n",
		sizes["cairn"]>>20, sizes["restic"]>>20, float64(sizes["cairn"])/float64(sizes["restic"]))
}

func median(ms []measure) measure {
	if len(ms) == 0 {
		return measure{wall: 1, cpu: 1, rssKiB: 1}
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].wall < ms[j].wall })
	return ms[len(ms)/2]
}
