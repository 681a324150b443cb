package backup

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/mem"
	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/repo"
)

// lockRacer is a backend on which, right after the backup's own lock file
// is stored, another client stores an exclusive lock: the backup's second
// look (after the 200 ms settle) finds it, by which time the pipeline has
// read and packed data.
type lockRacer struct {
	backend.Backend
	other *repo.Repository

	mu     sync.Mutex
	raced  bool
	stored []backend.Handle // everything but locks
}

func (b *lockRacer) Save(ctx context.Context, h backend.Handle, rd backend.RewindReader) error {
	if err := b.Backend.Save(ctx, h, rd); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if h.Type != backend.LockFile {
		b.stored = append(b.stored, h)
		return nil
	}
	if b.raced {
		return nil
	}
	b.raced = true
	host, _ := os.Hostname()
	buf, err := json.Marshal(&repo.Lock{Time: time.Now(), Exclusive: true, Hostname: host, PID: os.Getpid(), Username: "prune"})
	if err != nil {
		return err
	}
	_, err = b.other.SaveUnpacked(ctx, backend.LockFile, buf)
	return err
}

// TestLockRefusedAfterSettleStoresNothing: the backup starts reading and
// packing while its lock settles, but when the lock is refused at the end
// of the settle, not one pack, index or snapshot reaches the repository,
// and the error is the lock conflict (exit 11), not a cancellation.
func TestLockRefusedAfterSettleStoresNothing(t *testing.T) {
	ctx := context.Background()
	inner := mem.New()
	if _, err := repo.Init(ctx, inner, "pw", repo.InitOptions{Key: repo.KeyOptions{Params: &crypto.TestParams}}, repo.Options{}); err != nil {
		t.Fatal(err)
	}
	other, err := repo.Open(ctx, inner, "pw", repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	racer := &lockRacer{Backend: inner, other: other}
	r, err := repo.Open(ctx, racer, "pw", repo.Options{PackSize: repo.MinPackSize})
	if err != nil {
		t.Fatal(err)
	}
	// 24 MiB of incompressible data: six minimum-size packs' worth, more
	// than the writer may hold back, so the pipeline is still busy (or
	// waiting with finished packs) when the settle ends.
	files := map[string][]byte{}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, name := range []string{"a", "b", "c", "d", "e", "f"} {
		buf := make([]byte, 4<<20)
		for i := range buf {
			buf[i] = byte(rng.Uint32())
		}
		files[name] = buf
	}
	var progress Progress
	_, err = Run(ctx, r, newMemSource(files), Options{Location: time.UTC, Time: t0, Progress: &progress})
	var le *repo.LockedError
	if !errors.As(err, &le) || !le.Lock.Exclusive {
		t.Fatalf("backup under a competing exclusive lock: err = %v, want a *repo.LockedError naming it", err)
	}
	racer.mu.Lock()
	defer racer.mu.Unlock()
	if !racer.raced {
		t.Fatal("the backup never stored its lock")
	}
	if len(racer.stored) > 0 {
		t.Errorf("stored before the lock was granted: %v", racer.stored)
	}
	t.Logf("files read while the lock settled: %d (%d bytes)", progress.Files.Load(), progress.Bytes.Load())
}
