package sftp_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/cairn-backup/cairn/internal/sshtest"
	"github.com/cairn-backup/cairn/internal/sshx"
	"github.com/cairn-backup/cairn/sources"
	"github.com/cairn-backup/cairn/sources/sftp"
)

// BenchmarkRead reads a tree of large and small files through the source
// with eight files in flight (what repo/backup does for sources without
// inodes), and reports it against one `cat` of the same files streamed
// over an SSH session of the same server, measured in the same run.
//
//	go test ./sources/sftp -run '^$' -bench Read -benchtime 3x
func BenchmarkRead(b *testing.B) {
	srv := sshtest.Start(b)
	dir := b.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	var total int64
	write := func(name string, size int) {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			b.Fatal(err)
		}
		total += int64(size)
	}
	for i := range 24 {
		write(fmt.Sprintf("large%02d", i), 8<<20)
	}
	for i := range 2000 {
		write(fmt.Sprintf("small%04d", i), 1+rng.IntN(16<<10))
	}

	b.Run("cat", func(b *testing.B) {
		conn, err := sshx.Dial(b.Context(), sshx.Target{Host: srv.Host, Port: srv.Port, User: srv.User},
			sshx.Options{IdentityFiles: []string{srv.UserKey.Path}, KnownHostsFiles: []string{srv.KnownHosts}, IgnoreConfig: true})
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		b.SetBytes(total)
		for b.Loop() {
			sess, err := conn.NewSession()
			if err != nil {
				b.Fatal(err)
			}
			var out countingWriter
			sess.Stdout = &out
			if err := sess.Run("cat " + dir + "/*"); err != nil {
				b.Fatal(err)
			}
			if int64(out) != total {
				b.Fatalf("cat moved %d bytes, want %d", out, total)
			}
		}
	})
	b.Run("source", func(b *testing.B) {
		src, err := sftp.Open(b.Context(), config(srv, dir))
		if err != nil {
			b.Fatal(err)
		}
		defer src.Close()
		b.SetBytes(total)
		for b.Loop() {
			n, err := readAll(b.Context(), src, 8)
			if err != nil {
				b.Fatal(err)
			}
			if n != total {
				b.Fatalf("read %d bytes, want %d", n, total)
			}
		}
	})
}

type countingWriter int64

func (c *countingWriter) Write(p []byte) (int, error) {
	*c += countingWriter(len(p))
	return len(p), nil
}

// readAll walks src and reads every file, readers at a time.
func readAll(ctx context.Context, src sources.Source, readers int) (int64, error) {
	var opens []func(context.Context) (io.ReadCloser, error)
	c := &collector{entries: map[string]sources.Entry{}}
	if err := src.Walk(ctx, sources.WalkOptions{}, c); err != nil {
		return 0, err
	}
	for _, e := range c.entries {
		if e.Open != nil {
			opens = append(opens, e.Open)
		}
	}
	var g errgroup.Group
	g.SetLimit(readers)
	sizes := make([]int64, len(opens))
	for i, open := range opens {
		g.Go(func() error {
			rc, err := open(ctx)
			if err != nil {
				return err
			}
			defer rc.Close()
			sizes[i], err = io.Copy(io.Discard, rc)
			return err
		})
	}
	err := g.Wait()
	var n int64
	for _, s := range sizes {
		n += s
	}
	return n, err
}
