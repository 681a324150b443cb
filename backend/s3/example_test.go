package s3_test

import (
	"context"
	"fmt"
	"log"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/s3"
)

func ExampleParseConfig() {
	cfg, err := s3.ParseConfig("s3:https://minio.example.net:9000/backups/hosts/laptop/")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cfg.Endpoint, cfg.Bucket, cfg.Prefix, cfg.UseHTTP)
	fmt.Println(cfg)
	// Output:
	// minio.example.net:9000 backups hosts/laptop false
	// s3:https://minio.example.net:9000/backups/hosts/laptop
}

// Open a repository in a bucket with options as restic's -o flags set them;
// credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or a
// profile, or an IAM role).
func ExampleOpen() {
	ctx := context.Background()
	cfg, err := s3.ParseConfig("s3:s3.amazonaws.com/my-backups/laptop")
	if err != nil {
		log.Fatal(err)
	}
	cfg.ApplyEnvironment() // AWS_DEFAULT_REGION
	for k, v := range map[string]string{"storage-class": "STANDARD_IA", "connections": "8"} {
		if err := cfg.SetOption(k, v); err != nil {
			log.Fatal(err)
		}
	}
	be, err := s3.Open(ctx, cfg, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer be.Close()
	fi, err := be.Stat(ctx, backend.Handle{Type: backend.ConfigFile})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("config has", fi.Size, "bytes")
}
