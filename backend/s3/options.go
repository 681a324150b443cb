package s3

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SetOption applies one of restic's "-o s3.KEY=VALUE" options (key without
// the "s3." prefix): connections, retries, region, bucket-lookup,
// storage-class, list-objects-v1 and unsafe-anonymous-auth, plus
// stuck-request-timeout (restic's global --stuck-request-timeout).
func (c *Config) SetOption(key, value string) error {
	switch key {
	case "connections":
		n, err := strconv.ParseUint(value, 10, 32)
		if err != nil || n == 0 {
			return fmt.Errorf("s3.connections: %q is not a positive number", value)
		}
		c.Connections = uint(n)
	case "retries":
		n, err := strconv.ParseUint(value, 10, 32)
		if err != nil {
			return fmt.Errorf("s3.retries: %q is not a number", value)
		}
		c.MaxRetries = uint(n)
	case "stuck-request-timeout":
		d, err := time.ParseDuration(value)
		if err != nil || d <= 0 {
			return fmt.Errorf("s3.stuck-request-timeout: %q is not a positive duration", value)
		}
		c.StuckRequestTimeout = d
	case "region":
		c.Region = value
	case "bucket-lookup":
		switch strings.ToLower(value) {
		case "auto", "dns", "path":
			c.BucketLookup = strings.ToLower(value)
		default:
			return fmt.Errorf(`s3.bucket-lookup: %q is not "auto", "dns" or "path"`, value)
		}
	case "storage-class":
		c.StorageClass = value
	case "list-objects-v1", "unsafe-anonymous-auth":
		b, err := strconv.ParseBool(value)
		if err != nil {
			return fmt.Errorf("s3.%s: %q is not a boolean", key, value)
		}
		if key == "list-objects-v1" {
			c.ListObjectsV1 = b
		} else {
			c.UnsafeAnonymousAuth = b
		}
	case "enable-restore", "restore-days", "restore-timeout", "restore-tier":
		return fmt.Errorf("s3.%s: restoring from archive storage classes is not supported", key)
	case "layout":
		return fmt.Errorf("s3.layout: only restic's default layout is supported")
	default:
		return fmt.Errorf("unknown option s3.%s (known: connections, retries, region, bucket-lookup, "+
			"storage-class, list-objects-v1, unsafe-anonymous-auth, stuck-request-timeout)", key)
	}
	return nil
}
