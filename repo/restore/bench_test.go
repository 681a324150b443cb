package restore_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/internal/oracle"
	"github.com/cairn-backup/cairn/internal/testtools"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/restore"
)

// benchSet is a data set for the restore benchmarks.
type benchSet struct {
	name  string
	build func(b *testing.B, dir string) int64 // returns the bytes written
}

var benchSets = []benchSet{
	{"small-files", func(b *testing.B, dir string) int64 {
		// 20,000 files of 0–4 KiB in 200 directories, the shape where
		// per-file system calls dominate.
		rng := rand.New(rand.NewPCG(1, 1))
		var total int64
		for d := range 200 {
			sub := filepath.Join(dir, fmt.Sprintf("d%03d", d))
			if err := os.MkdirAll(sub, 0o755); err != nil {
				b.Fatal(err)
			}
			for f := range 100 {
				data := randomBytes(rng, rng.IntN(4096))
				total += int64(len(data))
				if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%03d", f)), data, 0o644); err != nil {
					b.Fatal(err)
				}
			}
		}
		return total
	}},
	{"large-files", func(b *testing.B, dir string) int64 {
		// Four 64 MiB files, two incompressible and two text, where the
		// cost is reading packs and writing data.
		rng := rand.New(rand.NewPCG(2, 2))
		for i := range 4 {
			var data []byte
			if i%2 == 0 {
				data = randomBytes(rng, 64<<20)
			} else {
				data = textBytes(rng, 64<<20)
			}
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("large%d", i)), data, 0o644); err != nil {
				b.Fatal(err)
			}
		}
		return 4 * 64 << 20
	}},
}

func randomBytes(rng *rand.Rand, n int) []byte {
	buf := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := rng.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			buf[i+j] = byte(v >> (8 * j))
		}
	}
	return buf
}

func textBytes(rng *rand.Rand, n int) []byte {
	words := []string{"restore ", "pack ", "blob ", "index ", "tree ", "snapshot ", "chunk ", "key\n"}
	buf := make([]byte, 0, n+16)
	for len(buf) < n {
		buf = append(buf, words[rng.IntN(len(words))]...)
	}
	return buf[:n]
}

// BenchmarkRestore restores each data set from a local repository (made by
// cairn's backup, compression auto) into a fresh directory, with cairn and,
// in the same run, with restic 0.19.1 for the ratio (with CI=true or
// CAIRN_BENCH_RESTIC set). Both open the repository and load the index in
// every iteration. Data is synced to disk between iterations, outside the
// timing. cpu-s/op is the user and system time used.
func BenchmarkRestore(b *testing.B) {
	for _, set := range benchSets {
		b.Run(set.name, func(b *testing.B) {
			tmp := b.TempDir()
			src := filepath.Join(tmp, "src")
			if err := os.Mkdir(src, 0o755); err != nil {
				b.Fatal(err)
			}
			size := set.build(b, src)
			r, repoDir := newRepo(b, true, repo.InitOptions{})
			sn := backupDir(b, r, src)
			if err := os.RemoveAll(src); err != nil {
				b.Fatal(err)
			}
			target := filepath.Join(tmp, "target")
			// run times restoreOnce, which returns the CPU time it used, and
			// reports that too: restore should be bound by I/O, not CPU.
			run := func(b *testing.B, restoreOnce func() time.Duration) {
				b.SetBytes(size)
				var cpu time.Duration
				for b.Loop() {
					b.StopTimer()
					if err := os.RemoveAll(target); err != nil {
						b.Fatal(err)
					}
					syncDisk(b)
					b.StartTimer()
					cpu += restoreOnce()
				}
				b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
			}
			b.Run("cairn", func(b *testing.B) {
				run(b, func() time.Duration {
					before := selfCPU(b)
					// Opening the repository and loading the index is part of
					// the work, as it is for the restic command.
					r := openLocal(b, repoDir)
					if res, err := restore.Run(context.Background(), r, sn, "", restore.Options{Target: target}); err != nil {
						b.Fatal(err, res.Failures)
					}
					return selfCPU(b) - before
				})
			})
			b.Run("restic", func(b *testing.B) {
				if !testtools.InCI() && os.Getenv("CAIRN_BENCH_RESTIC") == "" {
					b.Skip("set CAIRN_BENCH_RESTIC=1 to time restic on the same repository")
				}
				o := oracle.New(b)
				run(b, func() time.Duration {
					cmd := exec.Command(o.Bin(), "-r", repoDir, "--cache-dir", o.CacheDir(), "restore", sn.ID().String(), "--target", target)
					cmd.Env = []string{"RESTIC_PASSWORD=" + o.Password(), "HOME=" + os.Getenv("HOME"), "TZ=UTC"}
					if out, err := cmd.CombinedOutput(); err != nil {
						b.Fatalf("restic restore: %v\n%s", err, out)
					}
					return cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
				})
			})
		})
	}
}

// selfCPU returns the user and system time this process has used.
func selfCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func syncDisk(b *testing.B) {
	if out, err := exec.Command("sync").CombinedOutput(); err != nil {
		b.Fatalf("sync: %v %s", err, out)
	}
}
