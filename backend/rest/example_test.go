package rest_test

import (
	"context"
	"fmt"
	"log"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/rest"
)

func ExampleParseConfig() {
	cfg, err := rest.ParseConfig("rest:https://alice:s3cret@backup.example.net:8000/alice/laptop")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cfg)          // safe to log: the password is redacted
	fmt.Println(cfg.URL.Host) // the server
	fmt.Println(cfg.URL.Path) // the repository, with the trailing slash restic adds
	fmt.Println(cfg.URL.User.Username())
	// Output:
	// rest:https://alice:***@backup.example.net:8000/alice/laptop/
	// backup.example.net:8000
	// /alice/laptop/
	// alice
}

// Open a repository on a rest-server with a private CA, create it and list
// its snapshots.
func ExampleOpen() {
	ctx := context.Background()
	cfg, err := rest.ParseConfig("rest:https://alice:s3cret@backup.example.net:8000/alice/laptop/")
	if err != nil {
		log.Fatal(err)
	}
	cfg.RootCAFiles = []string{"/etc/cairn/backup-ca.pem"}
	be, err := rest.Open(ctx, cfg, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer be.Close()
	if err := be.Create(ctx); err != nil {
		log.Fatal(err)
	}
	err = be.List(ctx, backend.SnapshotFile, func(fi backend.FileInfo) error {
		fmt.Println(fi.Name, fi.Size)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
}
