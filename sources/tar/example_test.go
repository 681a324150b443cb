package tar_test

import (
	stdtar "archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"log"

	"github.com/cairn-backup/cairn/sources"
	"github.com/cairn-backup/cairn/sources/tar"
)

// printer prints what a walk visits, reading each file's content while it
// is visited, as a stream requires.
type printer struct{}

func (printer) Visit(ctx context.Context, e *sources.Entry) error {
	size := ""
	if e.Open != nil {
		rc, err := e.Open(ctx)
		if err != nil {
			return err
		}
		n, err := io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return err
		}
		size = fmt.Sprintf(" (%d bytes)", n)
	}
	fmt.Printf("%-7s %s %s%s\n", e.Type, e.Mode, e.Path, size)
	return nil
}

func (printer) LeaveDir(context.Context, string) error { return nil }

// An archive such as `tar -cf - /srv/app` writes becomes one entry per
// member; the directories it implies are added. Hand the source to
// backup.Run like any other (cairn backup --stdin-tar).
func Example() {
	var buf bytes.Buffer
	w := stdtar.NewWriter(&buf)
	w.WriteHeader(&stdtar.Header{Name: "srv/app/config.yml", Mode: 0o640, Size: 12})
	w.Write([]byte("listen: :80\n"))
	w.WriteHeader(&stdtar.Header{Name: "srv/app/current", Typeflag: stdtar.TypeSymlink, Linkname: "releases/42", Mode: 0o777})
	w.Close()

	src, err := tar.New(&buf, tar.Options{Paths: []string{"/srv/app"}})
	if err != nil {
		log.Fatal(err)
	}
	defer src.Close()
	fmt.Println(src.Info().Paths, src.Info().Streamed)
	if err := src.Walk(context.Background(), sources.WalkOptions{}, printer{}); err != nil {
		log.Fatal(err)
	}
	// Output:
	// [/srv/app] true
	// dir     drwxr-xr-x srv
	// dir     drwxr-xr-x srv/app
	// file    -rw-r----- srv/app/config.yml (12 bytes)
	// symlink Lrwxrwxrwx srv/app/current
}
