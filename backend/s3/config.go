package s3

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"strings"
	"time"
)

// DefaultConnections is the number of concurrent requests a backend reports
// when Config.Connections is zero (restic's default).
const DefaultConnections = 5

// Config is where and how to reach a repository in a bucket. ParseConfig
// fills the location fields; the others map to restic's -o s3.xxx options
// and mean the documented default when zero.
type Config struct {
	// Endpoint is the server's host[:port], e.g. "s3.amazonaws.com".
	Endpoint string
	// UseHTTP talks plain HTTP instead of HTTPS.
	UseHTTP bool
	// Bucket is the bucket name.
	Bucket string
	// Prefix is the path inside the bucket under which the repository
	// lives, without leading or trailing slash; "" is the bucket's root.
	Prefix string

	// Region is the bucket's region (-o s3.region). Empty means
	// AWS_DEFAULT_REGION after ApplyEnvironment, else minio-go asks the
	// server.
	Region string
	// BucketLookup selects path-style or virtual-host-style URLs
	// (-o s3.bucket-lookup): "auto" (the default: virtual hosts for AWS and
	// a few other clouds), "dns" or "path".
	BucketLookup string
	// StorageClass is sent with every upload (-o s3.storage-class), except
	// that the archive classes GLACIER and DEEP_ARCHIVE are used only for
	// data packs; metadata must stay readable at once.
	StorageClass string
	// Connections is the number of concurrent requests the backend serves
	// well (-o s3.connections). 0 means DefaultConnections.
	Connections uint
	// MaxRetries is the number of attempts minio-go makes for a request
	// before it gives up (-o s3.retries): 1 disables its own retries, 0
	// means minio-go's default of 10.
	MaxRetries uint
	// StuckRequestTimeout gives up a request that makes no progress for
	// this long, with a transient error a retrying layer acts on (restic's
	// --stuck-request-timeout; -o s3.stuck-request-timeout). 0 means 5
	// minutes.
	StuckRequestTimeout time.Duration
	// ListObjectsV1 uses the old ListObjects API for servers without V2
	// (-o s3.list-objects-v1).
	ListObjectsV1 bool
	// UnsafeAnonymousAuth sends unsigned requests
	// (-o s3.unsafe-anonymous-auth); without it, finding no credentials is
	// an error.
	UnsafeAnonymousAuth bool

	// KeyID, Secret and SessionToken are static credentials that take
	// precedence over the environment. Secret and SessionToken are never
	// printed.
	KeyID        string
	Secret       string
	SessionToken string

	// RootCAFiles are PEM files of CA certificates to trust instead of the
	// system's roots (restic's --cacert).
	RootCAFiles []string
	// ClientCertFile is a PEM file holding a TLS client certificate and its
	// private key (restic's --tls-client-cert).
	ClientCertFile string
}

// ParseConfig parses a restic S3 location with restic's rules:
// "s3:http://host/bucket/prefix" or "s3:https://…" name the scheme;
// "s3:host/bucket/prefix" and "s3://host/bucket/prefix" mean HTTPS. The
// prefix is cleaned ("a/b/" becomes "a/b").
func ParseConfig(s string) (Config, error) {
	var endpoint, bucket, prefix string
	useHTTP := false
	switch {
	case strings.HasPrefix(s, "s3:http://"), strings.HasPrefix(s, "s3:https://"):
		u, err := url.Parse(s[len("s3:"):])
		if err != nil {
			var uerr *url.Error
			if errors.As(err, &uerr) {
				err = uerr.Err // url.Error quotes the whole input
			}
			return Config{}, fmt.Errorf("s3: invalid URL in location: %v", err)
		}
		if u.User != nil {
			return Config{}, errors.New("s3: credentials do not belong in the location; use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
		}
		if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
			return Config{}, fmt.Errorf("s3: location %s must not have a query or fragment", s)
		}
		if u.Path == "" || u.Path == "/" {
			return Config{}, fmt.Errorf("s3: location %s names no bucket", s)
		}
		endpoint = u.Host
		bucket, prefix, _ = strings.Cut(u.Path[1:], "/")
		useHTTP = u.Scheme == "http"
	case strings.HasPrefix(s, "s3://"), strings.HasPrefix(s, "s3:"):
		rest := strings.TrimPrefix(strings.TrimPrefix(s, "s3:"), "//")
		var after string
		endpoint, after, _ = strings.Cut(rest, "/")
		bucket, prefix, _ = strings.Cut(after, "/")
		if strings.Contains(endpoint, "@") {
			return Config{}, errors.New("s3: credentials do not belong in the location; use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
		}
	default:
		return Config{}, errors.New(`s3: location must start with "s3:"`)
	}
	if endpoint == "" {
		return Config{}, fmt.Errorf("s3: invalid format, host/region or bucket name not found in %s", s)
	}
	if bucket == "" {
		return Config{}, fmt.Errorf("s3: location %s names no bucket", s)
	}
	if prefix != "" {
		prefix = path.Clean(prefix)
		if prefix == "." || prefix == ".." || strings.HasPrefix(prefix, "../") {
			return Config{}, fmt.Errorf("s3: invalid prefix in location %s", s)
		}
	}
	return Config{Endpoint: endpoint, UseHTTP: useHTTP, Bucket: bucket, Prefix: prefix}, nil
}

// ApplyEnvironment sets Region from AWS_DEFAULT_REGION when it is empty, as
// restic does.
func (c *Config) ApplyEnvironment() {
	if c.Region == "" {
		c.Region = os.Getenv("AWS_DEFAULT_REGION")
	}
}

// String returns the location, "s3:https://host/bucket/prefix". It never
// contains credentials, so a Config can be logged with %v or %+v.
func (c Config) String() string {
	scheme := "https"
	if c.UseHTTP {
		scheme = "http"
	}
	loc := "s3:" + scheme + "://" + c.Endpoint + "/" + c.Bucket
	if c.Prefix != "" {
		loc += "/" + c.Prefix
	}
	return loc
}

// GoString keeps %#v from printing the secret.
func (c Config) GoString() string {
	redacted := func(s string) string {
		if s == "" {
			return `""`
		}
		return `"***"`
	}
	return fmt.Sprintf("s3.Config{Endpoint: %q, UseHTTP: %v, Bucket: %q, Prefix: %q, Region: %q, BucketLookup: %q, "+
		"StorageClass: %q, Connections: %d, MaxRetries: %d, ListObjectsV1: %v, UnsafeAnonymousAuth: %v, KeyID: %q, "+
		"Secret: %s, SessionToken: %s, RootCAFiles: %q, ClientCertFile: %q}",
		c.Endpoint, c.UseHTTP, c.Bucket, c.Prefix, c.Region, c.BucketLookup, c.StorageClass, c.Connections,
		c.MaxRetries, c.ListObjectsV1, c.UnsafeAnonymousAuth, c.KeyID, redacted(c.Secret), redacted(c.SessionToken),
		c.RootCAFiles, c.ClientCertFile)
}
