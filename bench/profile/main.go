// Command profile runs one cairn backup or restore through the library with
// Go's profilers on, to find where the time of a bench/compare step goes.
// The repository must exist (cairn init or restic init); the password comes
// from RESTIC_PASSWORD.
//
//	RESTIC_PASSWORD=bench go run ./bench/profile -repo /var/tmp/cairn-bench/p -cpuprofile cpu.out backup /var/tmp/cairn-bench/data/mixed
//	RESTIC_PASSWORD=bench go run ./bench/profile -repo /var/tmp/cairn-bench/p -cpuprofile cpu.out restore /var/tmp/restore-target
//	go tool pprof -top cpu.out
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/cairn-backup/cairn/backend/local"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/backup"
	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/restore"
	srclocal "github.com/cairn-backup/cairn/sources/local"
)

func main() {
	log.SetFlags(0)
	repoDir := flag.String("repo", "", "local repository")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile here")
	memProfile := flag.String("memprofile", "", "write an allocation profile here at the end")
	compression := flag.String("compression", "auto", "compression for backup")
	blockProfile := flag.String("blockprofile", "", "write a goroutine blocking profile here (where the pipeline waits)")
	heapAt := flag.Duration("heapat", 0, "with -memprofile: write the in-use heap profile this long after the start instead of the allocations at the end")
	flag.Parse()
	if *repoDir == "" || flag.NArg() != 2 {
		log.Fatal("usage: profile -repo DIR [-cpuprofile F] backup SRC | restore TARGET")
	}
	if *memProfile != "" {
		runtime.MemProfileRate = 64 << 10
	}
	ctx := context.Background()
	comp, err := repo.ParseCompression(*compression)
	if err != nil {
		log.Fatal(err)
	}
	be, err := local.Open(ctx, *repoDir)
	if err != nil {
		log.Fatal(err)
	}
	r, err := repo.Open(ctx, be, os.Getenv("RESTIC_PASSWORD"), repo.Options{Compression: comp})
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	if *blockProfile != "" {
		runtime.SetBlockProfileRate(100000) // one event per 100 µs blocked
		defer func() {
			if err := writeProfile(*blockProfile, "block"); err != nil {
				log.Print(err)
			}
		}()
	}
	start := time.Now()
	if *memProfile != "" && *heapAt > 0 {
		time.AfterFunc(*heapAt, func() {
			runtime.GC()
			if err := writeProfile(*memProfile, "heap"); err != nil {
				log.Print(err)
			}
		})
	}
	switch flag.Arg(0) {
	case "backup":
		err = runBackup(ctx, r, flag.Arg(1))
	case "restore":
		err = runRestore(ctx, r, flag.Arg(1))
	default:
		err = fmt.Errorf("unknown operation %q", flag.Arg(0))
	}
	if err != nil {
		pprof.StopCPUProfile()
		log.Fatal(err)
	}
	var ru runtime.MemStats
	runtime.ReadMemStats(&ru)
	log.Printf("%s took %v (heap in use at the end %d MiB, total allocated %d MiB)", flag.Arg(0), time.Since(start), ru.HeapInuse>>20, ru.TotalAlloc>>20)
	if *memProfile != "" && *heapAt == 0 {
		if err := writeProfile(*memProfile, "allocs"); err != nil {
			log.Fatal(err)
		}
	}
}

func writeProfile(path, name string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
		f.Close()
		return fmt.Errorf("write %s profile: %w", name, err)
	}
	return f.Close()
}

func runBackup(ctx context.Context, r *repo.Repository, dir string) error {
	src, err := srclocal.New([]string{dir}, srclocal.Options{Hostname: "bench"})
	if err != nil {
		return err
	}
	defer src.Close()
	res, err := backup.Run(ctx, r, src, backup.Options{Hostname: "bench", ProgramVersion: "cairn-profile"})
	if err != nil {
		return err
	}
	log.Printf("snapshot %s: %+v", res.Snapshot.ID().Str(), res.Summary)
	return nil
}

func runRestore(ctx context.Context, r *repo.Repository, target string) error {
	if err := r.EnsureIndex(ctx, nil); err != nil {
		return err
	}
	var latest *repo.Snapshot
	err := r.ForEachSnapshot(ctx, func(_ blob.ID, sn *repo.Snapshot, err error) error {
		if err == nil && (latest == nil || sn.Time.After(latest.Time)) {
			latest = sn
		}
		return nil
	})
	if err != nil {
		return err
	}
	if latest == nil {
		return errors.New("no snapshot")
	}
	res, err := restore.Run(ctx, r, latest, "/", restore.Options{Target: target})
	if err != nil {
		return err
	}
	log.Printf("restored %d files", res.FilesRestored)
	return nil
}
