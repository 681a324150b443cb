package sftp_test

import (
	"context"
	"fmt"
	"log"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/sftp"
)

func ExampleParseConfig() {
	cfg, err := sftp.ParseConfig("sftp://backup@nas.example.com:2222//srv/restic")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cfg.User, cfg.Host, cfg.Port, cfg.Path, cfg.Connections)

	cfg, err = sftp.ParseConfig("sftp:nas:restic-repo")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("host %q (an alias in ~/.ssh/config), path %q (relative to the login directory)\n", cfg.Host, cfg.Path)
	// Output:
	// backup nas.example.com 2222 /srv/restic 5
	// host "nas" (an alias in ~/.ssh/config), path "restic-repo" (relative to the login directory)
}

// Open a repository from a Kubernetes pod: no ~/.ssh, the key and the
// known_hosts file are mounted from a Secret.
func ExampleOpen() {
	cfg, err := sftp.ParseConfig("sftp:backup@nas.example.com:/srv/restic")
	if err != nil {
		log.Fatal(err)
	}
	for name, value := range map[string]string{
		"sftp.key":         "/var/run/secrets/cairn/id_ed25519",
		"sftp.known-hosts": "/var/run/secrets/cairn/known_hosts",
		"sftp.connections": "8",
	} {
		if err := cfg.SetOption(name, value); err != nil {
			log.Fatal(err)
		}
	}
	be, err := sftp.Open(context.Background(), cfg)
	if err != nil {
		log.Fatal(err) // an unknown host key ends here, with the ssh-keyscan command to run
	}
	defer be.Close()
	err = be.List(context.Background(), backend.SnapshotFile, func(fi backend.FileInfo) error {
		fmt.Println(fi.Name)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
}
