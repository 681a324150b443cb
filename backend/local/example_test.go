package local_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/local"
)

// Example creates a repository directory, stores a file, lists and reads it.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "cairn-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	be, err := local.Create(ctx, filepath.Join(dir, "repo"))
	if err != nil {
		log.Fatal(err)
	}
	defer be.Close()

	// Real repositories name files by the SHA-256 of their content.
	h := backend.Handle{Type: backend.SnapshotFile, Name: "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"}
	if err := be.Save(ctx, h, backend.NewByteReader([]byte("foo"), false)); err != nil {
		log.Fatal(err)
	}

	err = be.List(ctx, backend.SnapshotFile, func(fi backend.FileInfo) error {
		fmt.Printf("%s… %d bytes\n", fi.Name[:12], fi.Size)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}

	err = be.Load(ctx, h, 0, 0, func(rd io.Reader) error {
		data, err := io.ReadAll(rd)
		fmt.Printf("content %q\n", data)
		return err
	})
	if err != nil {
		log.Fatal(err)
	}

	fi, err := os.Stat(filepath.Join(be.Location(), "snapshots", h.Name))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("mode", fi.Mode())
	// Output:
	// 2c26b46b68ff… 3 bytes
	// content "foo"
	// mode -r--------
}
