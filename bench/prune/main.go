// Command prune times cairn prune against restic prune on the same large
// repository: many snapshots whose directories overlap like real backups,
// over a million small data blobs written in random order, so that after the
// oldest snapshots are forgotten every pack is partly used and prune must
// repack most of the repository.
//
// The repository is generated once with cairn's library (fast: no chunking,
// no files) into WORK/base and reused. Each round copies it, removes the
// oldest snapshot files (a forget), and runs each tool's prune on its own
// copy, reporting wall time and peak RSS; restic then checks cairn's result.
// Each round also times both tools' check, plain, with --read-data-subset
// 1/10 and with --read-data, on one more copy, and the end prints medians.
//
// Run it from the module root:
//
//	go run ./bench/prune -work /var/tmp/cairn-prune-bench
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/cairn-backup/cairn/backend/local"
	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/tree"
)

const password = "prune-bench"

type shape struct {
	snapshots, forget  int // snapshots written; oldest removed before pruning
	dirs, filesPerDir  int // directory trees; files in each
	blobsPerFile       int
	window, step       int // directories per snapshot; shift between snapshots
	minBlob, blobRange int // data blob size: minBlob + [0, blobRange)
}

func main() {
	work := flag.String("work", "/var/tmp/cairn-prune-bench", "work directory (the generated repository is cached in WORK/base)")
	cairnBin := flag.String("cairn", "", "cairn binary (default: build ./cmd/cairn)")
	resticBin := flag.String("restic", filepath.Join(os.Getenv("HOME"), ".cache/cairn-tools/restic-v0.19.1/restic"), "restic 0.19.1 binary")
	rounds := flag.Int("rounds", 1, "rounds")
	scale := flag.Int("scale", 100, "size in percent of the default shape (1.05 M blobs, 260 snapshots)")
	heapProfile := flag.String("heapprofile", "", "instead of the comparison, prune a prepared copy in this process and write the heap profile at the peak of the live heap here")
	flag.Parse()
	sh := shape{snapshots: 260, forget: 50, dirs: 1050, filesPerDir: 10, blobsPerFile: 100, window: 50, step: 4, minBlob: 200, blobRange: 400}
	sh.dirs = sh.dirs * *scale / 100
	sh.snapshots = max(sh.forget+1, (sh.dirs-sh.window)/sh.step+1)

	base := filepath.Join(*work, fmt.Sprintf("base-%d", *scale))
	if _, err := os.Stat(filepath.Join(base, "config")); err != nil {
		t0 := time.Now()
		if err := generate(context.Background(), base, sh); err != nil {
			log.Fatal(err)
		}
		log.Printf("generated %s in %v", base, time.Since(t0).Round(time.Millisecond))
	}
	if *heapProfile != "" {
		dir := filepath.Join(*work, "run-profile")
		prepare(base, dir, sh)
		profilePrune(dir, *heapProfile)
		return
	}
	if *cairnBin == "" {
		*cairnBin = filepath.Join(*work, "cairn")
		build := exec.Command("go", "build", "-o", *cairnBin, "./cmd/cairn")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			log.Fatalf("build cairn: %v", err)
		}
	}
	fmt.Printf("repository: %d snapshots (%d forgotten before the prune), %d data blobs, %s of packs\n",
		sh.snapshots, sh.forget, sh.dirs*sh.filesPerDir*sh.blobsPerFile, du(filepath.Join(base, "data")))
	// check runs read-only on one copy (the state prune starts from).
	checkDir := filepath.Join(*work, "run-check")
	prepare(base, checkDir, sh)
	checks := []struct{ name, arg string }{{"check", ""}, {"check --read-data-subset 1/10", "--read-data-subset=1/10"}, {"check --read-data", "--read-data"}}
	results := map[string][]measure{}
	for round := range *rounds {
		tools := []struct{ name, bin string }{{"cairn", *cairnBin}, {"restic", *resticBin}}
		if round%2 == 1 {
			slices.Reverse(tools)
		}
		for _, tl := range tools {
			dir := filepath.Join(*work, "run-"+tl.name)
			prepare(base, dir, sh)
			cache := filepath.Join(*work, "cache-"+tl.name)
			_ = os.RemoveAll(cache)
			wall, rss, _ := run(tl.bin, dir, cache, "prune")
			results[tl.name+" prune"] = append(results[tl.name+" prune"], measure{wall, rss})
			fmt.Printf("round %d %-6s prune: %8.2f s  peak RSS %6.0f MiB  packs after %s\n", round+1, tl.name, wall.Seconds(), float64(rss)/1024, du(filepath.Join(dir, "data")))
			if tl.name == "cairn" {
				if _, _, out := run(*resticBin, dir, cache+"-check", "check"); !strings.Contains(out, "no errors were found") {
					log.Fatalf("restic check after cairn prune:\n%s", out)
				}
			}
		}
		for _, c := range checks {
			for _, tl := range tools {
				args := []string{"check"}
				if c.arg != "" {
					args = append(args, c.arg)
				}
				cache := filepath.Join(*work, "cache-check-"+tl.name)
				_ = os.RemoveAll(cache)
				wall, rss, out := run(tl.bin, checkDir, cache, args...)
				if !strings.Contains(out, "no errors were found") {
					log.Fatalf("%s %s:\n%s", tl.name, c.name, out)
				}
				key := tl.name + " " + c.name
				results[key] = append(results[key], measure{wall, rss})
				fmt.Printf("round %d %-6s %s: %8.2f s  peak RSS %6.0f MiB\n", round+1, tl.name, c.name, wall.Seconds(), float64(rss)/1024)
			}
		}
	}
	fmt.Println("\nmedians (cairn / restic):")
	ops := []string{"prune"}
	for _, c := range checks {
		ops = append(ops, c.name)
	}
	for _, op := range ops {
		cw, cr := median(results["cairn "+op])
		rw, rr := median(results["restic "+op])
		fmt.Printf("%-30s wall %6.2f s vs %6.2f s = %.2f   peak RSS %4.0f MiB vs %4.0f MiB = %.2f\n",
			op, cw.Seconds(), rw.Seconds(), cw.Seconds()/rw.Seconds(), float64(cr)/1024, float64(rr)/1024, float64(cr)/float64(rr))
	}
}

// measure is one run's wall time and peak RSS (KiB).
type measure struct {
	wall time.Duration
	rss  int64
}

// median returns the median wall time and the median peak RSS.
func median(ms []measure) (time.Duration, int64) {
	if len(ms) == 0 {
		return 0, 0
	}
	walls := make([]time.Duration, len(ms))
	rss := make([]int64, len(ms))
	for i, m := range ms {
		walls[i], rss[i] = m.wall, m.rss
	}
	slices.Sort(walls)
	slices.Sort(rss)
	return walls[len(ms)/2], rss[len(ms)/2]
}

// prepare copies the base repository to dir and removes the oldest
// snapshots' files, as forget would.
func prepare(base, dir string, sh shape) {
	_ = os.RemoveAll(dir)
	if out, err := exec.Command("cp", "-a", base, dir).CombinedOutput(); err != nil {
		log.Fatalf("copy: %v\n%s", err, out)
	}
	old, err := os.ReadFile(filepath.Join(base, "oldest"))
	if err != nil {
		log.Fatal(err)
	}
	for _, id := range strings.Fields(string(old)) {
		if err := os.Remove(filepath.Join(dir, "snapshots", id)); err != nil {
			log.Fatal(err)
		}
	}
	_ = os.Remove(filepath.Join(dir, "oldest"))
	// Both tools start with a warm page cache.
	_ = exec.Command("sh", "-c", "cat "+dir+"/data/*/* "+dir+"/index/* >/dev/null").Run()
}

// run runs a tool and returns its wall time, peak RSS in KiB and output.
func run(bin, dir, cache string, args ...string) (time.Duration, int64, string) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "RESTIC_REPOSITORY="+dir, "RESTIC_PASSWORD="+password, "RESTIC_CACHE_DIR="+cache)
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	wall := time.Since(t0)
	if err != nil {
		log.Fatalf("%s %v: %v\n%s", bin, args, err, out)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return wall, ru.Maxrss, string(out)
}

func du(dir string) string {
	out, _ := exec.Command("du", "-sh", dir).Output()
	f := strings.Fields(string(out))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

// generate writes the repository: data blobs in random order, a tree per
// directory (files of consecutive blobs), a root tree per snapshot over a
// sliding window of directories.
func generate(ctx context.Context, dir string, sh shape) error {
	tmp := dir + ".tmp"
	_ = os.RemoveAll(tmp)
	be, err := local.Create(ctx, tmp)
	if err != nil {
		return err
	}
	r, err := repo.Init(ctx, be, password, repo.InitOptions{Key: repo.KeyOptions{Params: &crypto.TestParams}}, repo.Options{Compression: repo.CompressionOff})
	if err != nil {
		return err
	}
	defer r.Close()
	w, err := r.NewBlobWriter(ctx)
	if err != nil {
		return err
	}
	n := sh.dirs * sh.filesPerDir * sh.blobsPerFile
	ids := make([]blob.ID, n)
	order := rand.New(rand.NewPCG(1, 2)).Perm(n)
	g, gctx := errgroup.WithContext(ctx)
	const workers = 4
	for wk := range workers {
		g.Go(func() error {
			src := rand.NewChaCha8([32]byte{byte(wk)})
			rng := rand.New(src)
			buf := make([]byte, sh.minBlob+sh.blobRange)
			for i := wk; i < n; i += workers {
				k := order[i]
				data := buf[:sh.minBlob+rng.IntN(sh.blobRange)]
				_, _ = src.Read(data)
				binary.LittleEndian.PutUint64(data, uint64(k))
				ids[k] = blob.Hash(data)
				if _, err := w.SaveBlob(gctx, blob.DataBlob, data, ids[k]); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	mtime := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	dirIDs := make([]blob.ID, sh.dirs)
	for d := range sh.dirs {
		var nodes []*tree.Node
		for f := range sh.filesPerDir {
			first := (d*sh.filesPerDir + f) * sh.blobsPerFile
			nodes = append(nodes, &tree.Node{Name: fmt.Sprintf("file%02d", f), Type: tree.TypeFile, Mode: 0o644,
				ModTime: mtime, AccessTime: mtime, ChangeTime: mtime, Size: uint64(sh.blobsPerFile * sh.minBlob),
				Content: slices.Clone(ids[first : first+sh.blobsPerFile])})
		}
		buf, err := tree.Encode(nodes)
		if err != nil {
			return err
		}
		dirIDs[d] = blob.Hash(buf)
		if _, err := w.SaveBlob(ctx, blob.TreeBlob, buf, dirIDs[d]); err != nil {
			return err
		}
	}
	var oldest []string
	type snap struct {
		root blob.ID
		when time.Time
	}
	var snaps []snap
	for s := range sh.snapshots {
		var nodes []*tree.Node
		for d := s * sh.step; d < min(sh.dirs, s*sh.step+sh.window); d++ {
			sub := dirIDs[d]
			nodes = append(nodes, &tree.Node{Name: fmt.Sprintf("dir%05d", d), Type: tree.TypeDir, Mode: os.ModeDir | 0o755,
				ModTime: mtime, AccessTime: mtime, ChangeTime: mtime, Subtree: &sub})
		}
		sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })
		buf, err := tree.Encode(nodes)
		if err != nil {
			return err
		}
		root := blob.Hash(buf)
		if _, err := w.SaveBlob(ctx, blob.TreeBlob, buf, root); err != nil {
			return err
		}
		snaps = append(snaps, snap{root, mtime.Add(time.Duration(s) * time.Hour)})
	}
	if err := w.Flush(ctx); err != nil {
		return err
	}
	for s, sn := range snaps {
		root := sn.root
		id, err := r.SaveSnapshot(ctx, &repo.Snapshot{Time: sn.when, Tree: &root, Paths: []string{"/data"}, Hostname: "bench"})
		if err != nil {
			return err
		}
		if s < sh.forget {
			oldest = append(oldest, id.String())
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, "oldest"), []byte(strings.Join(oldest, "\n")), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, dir)
}
