package sftp_test

import (
	"testing"
	"time"

	"github.com/cairn-backup/cairn/internal/sshtest"
	"github.com/cairn-backup/cairn/internal/testtree"
	"github.com/cairn-backup/cairn/sources"
	"github.com/cairn-backup/cairn/sources/sftp"
	"github.com/cairn-backup/cairn/sources/sourcetest"
)

// config returns a source configuration for paths on srv that uses only
// the server's generated key and known_hosts, never the ~/.ssh of
// whoever runs the test.
func config(srv *sshtest.Server, paths ...string) sftp.Config {
	return sftp.Config{
		User: srv.User, Host: srv.Host, Port: srv.Port, Paths: paths,
		Key: srv.UserKey.Path, KnownHosts: srv.KnownHosts, Args: "-F /dev/null",
	}
}

// sftpTimes is the range of times SFTP version 3 can carry: unsigned
// 32-bit seconds.
var sftpTimes = struct{ lo, hi time.Time }{time.Unix(0, 0), time.Unix(1<<32-1, 0)}

func representable(t time.Time) bool {
	return !t.Before(sftpTimes.lo) && !t.After(sftpTimes.hi)
}

func TestConformance(t *testing.T) {
	srv := sshtest.Start(t)
	sourcetest.Run(t, sourcetest.Harness{
		Open: func(t *testing.T, dir string) sources.Source {
			src, err := sftp.Open(t.Context(), config(srv, dir))
			if err != nil {
				t.Fatal(err)
			}
			return src
		},
		HidesUnsearchable: true,
		Inexact: func(f *testtree.File) string {
			if !representable(f.ModTime) || ((f.IsRegular() || f.IsDir()) && !representable(f.AccessTime)) {
				return "SFTP carries times as unsigned 32-bit seconds"
			}
			return ""
		},
	})
}
