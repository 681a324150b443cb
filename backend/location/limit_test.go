package location_test

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/location"
	"github.com/cairn-backup/cairn/backend/mem"
)

func TestLimitNoneReturnsBackend(t *testing.T) {
	be := mem.New()
	got, err := location.Limit(be, location.Limits{})
	if err != nil || got != backend.Backend(be) {
		t.Fatalf("Limit without limits = %v, %v; want the backend itself", got, err)
	}
	if _, err := location.Limit(be, location.Limits{UploadKiB: -1}); err == nil {
		t.Error("negative limit accepted")
	}
}

// The limits are lower bounds on the time a transfer takes (the first
// burst is free), and the data must arrive unchanged.
func TestLimitRates(t *testing.T) {
	ctx := context.Background()
	be, err := location.Limit(mem.New(), location.Limits{UploadKiB: 256, DownloadKiB: 512})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := be.(backend.Creator); !ok {
		t.Error("limited backend hides Creator")
	}
	data := bytes.Repeat([]byte("cairn-limit"), 30000) // ~322 KiB
	h := backend.Handle{Type: backend.PackFile, Name: "aa" + string(bytes.Repeat([]byte("0"), 62))}

	start := time.Now()
	if err := be.Save(ctx, h, backend.NewByteReader(data, false)); err != nil {
		t.Fatal(err)
	}
	// (322-64) KiB at 256 KiB/s ≥ 1 s.
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Errorf("upload of %d bytes at 256 KiB/s took %v", len(data), d)
	}

	start = time.Now()
	var got []byte
	err = be.Load(ctx, h, 0, 0, func(rd io.Reader) error {
		var err error
		got, err = io.ReadAll(rd)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// (322-64) KiB at 512 KiB/s ≥ 0.5 s.
	if d := time.Since(start); d < 450*time.Millisecond {
		t.Errorf("download of %d bytes at 512 KiB/s took %v", len(data), d)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("data changed by the limiter")
	}
}

func TestLimitHonoursCancel(t *testing.T) {
	be, err := location.Limit(mem.New(), location.Limits{UploadKiB: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	h := backend.Handle{Type: backend.PackFile, Name: "bb" + string(bytes.Repeat([]byte("0"), 62))}
	start := time.Now()
	err = be.Save(ctx, h, backend.NewByteReader(make([]byte, 1<<20), false))
	if err == nil {
		t.Fatal("1 MiB at 1 KiB/s finished within 200 ms")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancelled upload returned after %v", d)
	}
}
