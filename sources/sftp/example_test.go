package sftp_test

import (
	"context"
	"fmt"
	"log"

	"github.com/cairn-backup/cairn/sources"
	"github.com/cairn-backup/cairn/sources/sftp"
)

// A remote source as a backup argument names it.
func ExampleParseURL() {
	cfg, err := sftp.ParseURL("sftp://backup@kvm1:2222/srv/app/")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cfg.User, cfg.Host, cfg.Port, cfg.Paths)
	// Output: backup kvm1 2222 [/srv/app]
}

// printer is a Visitor that prints what a walk finds.
type printer struct{}

func (printer) Visit(_ context.Context, e *sources.Entry) error {
	fmt.Printf("%v %s %d %s\n", e.Mode, e.Path, e.Size, e.ModTime.UTC().Format("2006-01-02 15:04:05"))
	return nil
}

func (printer) LeaveDir(context.Context, string) error { return nil }

// Walk two directories of a host with a key and known_hosts mounted from a
// Kubernetes Secret (the snapshot would be named "kvm1", with both paths).
// It needs a reachable host, so it has no checked output.
func Example() {
	ctx := context.Background()
	cfg, err := sftp.ParseURL("sftp://backup@kvm1/srv/app")
	if err != nil {
		log.Fatal(err)
	}
	cfg.Paths = append(cfg.Paths, "/etc/app")
	cfg.Key = "/var/run/secrets/ssh/id_ed25519"
	cfg.KnownHosts = "/var/run/secrets/ssh/known_hosts"
	src, err := sftp.Open(ctx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer src.Close()
	fmt.Println(src.Info().Hostname, src.Info().Paths)
	err = src.Walk(ctx, sources.WalkOptions{
		OnError: func(path string, err error) error {
			log.Printf("warning: %s: %v", path, err)
			return nil
		},
	}, printer{})
	if err != nil {
		log.Fatal(err)
	}
}
