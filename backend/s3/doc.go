// Package s3 stores a repository in an S3 bucket (AWS, MinIO, Ceph, Wasabi,
// Backblaze B2, versitygw and other compatible servers) through minio-go.
//
// Objects are laid out exactly as restic lays them out (spec §1.4): below an
// optional prefix, "config", "keys/<id>", "locks/<id>", "snapshots/<id>",
// "index/<id>" and "data/<id[:2]>/<id>", with no directory objects. Uploads
// are single PUTs with Content-MD5 (multipart only above 200 MiB), so an
// object appears whole or not at all.
//
// Locations use restic's syntax:
//
//	s3:https://host[:port]/bucket[/prefix]   (s3:http://… for plain HTTP)
//	s3:host[:port]/bucket[/prefix]           (HTTPS)
//	s3:s3.amazonaws.com/bucket
//
// Credentials come from the first source that has them, in restic's order:
// the Config's static keys, AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
// AWS_SESSION_TOKEN, MINIO_ACCESS_KEY / MINIO_SECRET_KEY, the shared
// credentials file (AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials,
// profile AWS_PROFILE), MinIO's client config, and finally the instance's
// IAM role, ECS task role or web identity (IRSA: AWS_WEB_IDENTITY_TOKEN_FILE
// with AWS_ROLE_ARN). Secrets never appear in Location, Config.String or
// errors.
//
// minio-go retries failed requests itself (Config.MaxRetries attempts,
// backing off up to a second), rewinding the upload for each attempt; a
// cancelled context ends an operation at once, retries included. A request
// that makes no progress for Config.StuckRequestTimeout (5 minutes) fails
// with a transient error, so a hanging server cannot hang the caller. Error
// answers become *Error, which tells permanent failures from transient ones
// and unwraps to fs.ErrNotExist, fs.ErrPermission or backend.ErrShortRead.
package s3
