package s3

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"path"
	"slices"
	"strings"

	"github.com/minio/minio-go/v7"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/internal/stall"
)

// multipartThreshold is the size above which Save uploads in parts of this
// size, as restic does; anything smaller is one PUT. A variable so that
// tests can exercise multipart uploads with small files.
var multipartThreshold int64 = 200 << 20

// archiveClasses are the storage classes whose objects cannot be read
// without a restore request; only data packs go there.
var archiveClasses = []string{"GLACIER", "DEEP_ARCHIVE"}

// Backend is a repository in an S3 bucket. It is safe for concurrent use.
type Backend struct {
	client      *minio.Client
	core        minio.Core
	bucket      string
	prefix      string
	region      string
	class       string
	listV1      bool
	connections uint
	location    string
	own         *http.Transport // the transport Open built, closed by Close
}

// Compile-time checks of the capabilities the repository looks for.
var (
	_ backend.Backend  = (*Backend)(nil)
	_ backend.Creator  = (*Backend)(nil)
	_ backend.Replacer = (*Backend)(nil)
)

// Open returns a backend for the repository cfg names. It resolves the
// credentials (failing when there are none) but does not contact the S3
// server. rt carries the requests; when it is nil, Open builds a transport
// from cfg's TLS settings. Passing rt together with TLS files in cfg is an
// error, because they would be silently ignored.
func Open(ctx context.Context, cfg Config, rt http.RoundTripper) (*Backend, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("s3: open %v: %w", cfg, err)
	}
	if cfg.Endpoint == "" || cfg.Bucket == "" {
		return nil, fmt.Errorf("s3: open %v: endpoint and bucket are required", cfg)
	}
	var lookup minio.BucketLookupType
	switch strings.ToLower(cfg.BucketLookup) {
	case "", "auto":
		lookup = minio.BucketLookupAuto
	case "dns":
		lookup = minio.BucketLookupDNS
	case "path":
		lookup = minio.BucketLookupPath
	default:
		return nil, fmt.Errorf(`s3: open %v: bucket-lookup %q is not "auto", "dns" or "path"`, cfg, cfg.BucketLookup)
	}
	b := &Backend{
		bucket:      cfg.Bucket,
		prefix:      strings.Trim(cfg.Prefix, "/"),
		region:      cfg.Region,
		class:       strings.ToUpper(cfg.StorageClass),
		listV1:      cfg.ListObjectsV1,
		connections: cfg.Connections,
		location:    cfg.String(),
	}
	if b.connections == 0 {
		b.connections = DefaultConnections
	}
	if rt == nil {
		tr, err := newTransport(cfg)
		if err != nil {
			return nil, fmt.Errorf("s3: open %v: %w", cfg, err)
		}
		b.own, rt = tr, tr
	} else if len(cfg.RootCAFiles) > 0 || cfg.ClientCertFile != "" {
		return nil, fmt.Errorf("s3: open %v: TLS files in the config need the built-in transport, but a RoundTripper was passed", cfg)
	}
	// A server that hangs mid-transfer must not hang the caller: the
	// watchdog turns it into a transient error.
	rt = stall.RoundTripper(rt, cfg.StuckRequestTimeout)
	creds, err := newCredentials(cfg, rt)
	if err != nil {
		return nil, fmt.Errorf("s3: open %v: %w", cfg, err)
	}
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:        creds,
		Secure:       !cfg.UseHTTP,
		Region:       cfg.Region,
		Transport:    rt,
		BucketLookup: lookup,
		MaxRetries:   int(cfg.MaxRetries),
	})
	if err != nil {
		return nil, fmt.Errorf("s3: open %v: %w", cfg, err)
	}
	b.client = client
	b.core = minio.Core{Client: client}
	return b, nil
}

// Location returns the repository location, "s3:https://host/bucket/prefix".
func (b *Backend) Location() string { return b.location }

// Connections returns the configured number of concurrent requests.
func (b *Backend) Connections() uint { return b.connections }

// HasAtomicReplace reports true: a PUT replaces an object atomically.
func (b *Backend) HasAtomicReplace() bool { return true }

// Close releases idle connections of the transport Open built.
func (b *Backend) Close() error {
	if b.own != nil {
		b.own.CloseIdleConnections()
	}
	return nil
}

// Create makes the bucket when it does not exist (in Config.Region) and
// refuses a location that already holds a config, so a repository cannot be
// initialised twice. A bucket that exists but whose existence check is
// denied (credentials limited to a prefix) is used as it is.
func (b *Backend) Create(ctx context.Context) error {
	exists, err := b.client.BucketExists(ctx, b.bucket)
	if err != nil && minio.ToErrorResponse(err).Code == "AccessDenied" {
		exists, err = true, nil
	}
	if err != nil {
		return fmt.Errorf("s3: create repository at %s: check bucket: %w", b.location, mapError("create", err))
	}
	if !exists {
		err := b.client.MakeBucket(ctx, b.bucket, minio.MakeBucketOptions{Region: b.region})
		// Another client may have made it in the meantime.
		if err != nil && minio.ToErrorResponse(err).Code != "BucketAlreadyOwnedByYou" {
			return fmt.Errorf("s3: create repository at %s: make bucket: %w", b.location, mapError("create", err))
		}
	}
	_, err = b.stat(ctx, backend.Handle{Type: backend.ConfigFile})
	switch {
	case err == nil:
		return fmt.Errorf("s3: create repository at %s: config file already exists", b.location)
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("s3: create repository at %s: check for a config: %w", b.location, err)
	}
	return nil
}

// objectName returns the key of h in restic's layout below the prefix.
func (b *Backend) objectName(h backend.Handle) (string, error) {
	if err := h.Valid(); err != nil {
		return "", err
	}
	return backend.Path(b.prefix, h), nil
}

// useStorageClass reports whether h is stored with the configured class:
// archive classes are for data packs only, so that tree packs, indexes,
// snapshots, keys, locks and the config stay readable without a restore.
func useStorageClass(class string, h backend.Handle) bool {
	if !slices.Contains(archiveClasses, class) {
		return true
	}
	return h.Type == backend.PackFile && !h.IsMetadata
}

func (b *Backend) opError(op string, h backend.Handle, err error) error {
	return fmt.Errorf("s3: %s %v at %s: %w", op, h, b.location, mapError(op, err))
}

// Save uploads rd to h. Objects up to 200 MiB are one PUT with the
// Content-MD5 of the data (rd.Hash when the producer computed it, otherwise
// from an extra pass over rd), so the server rejects corrupted uploads and
// never shows a partial object.
func (b *Backend) Save(ctx context.Context, h backend.Handle, rd backend.RewindReader) error {
	name, err := b.objectName(h)
	if err != nil {
		return b.opError("save", h, err)
	}
	if err := ctx.Err(); err != nil {
		return b.opError("save", h, err)
	}
	size := rd.Length()
	if size < 0 {
		return b.opError("save", h, fmt.Errorf("negative length %d", size))
	}
	opts := minio.PutObjectOptions{ContentType: "application/octet-stream"}
	if b.class != "" && useStorageClass(b.class, h) {
		opts.StorageClass = b.class
	}
	var info minio.UploadInfo
	body := &uploadBody{ctx: ctx, rd: rd}
	if size <= multipartThreshold {
		sum := rd.Hash()
		if sum == nil {
			if sum, err = md5Of(rd, size); err != nil {
				return b.opError("save", h, err)
			}
		}
		if err := rd.Rewind(); err != nil {
			return b.opError("save", h, fmt.Errorf("rewind data: %w", err))
		}
		info, err = b.core.PutObject(ctx, b.bucket, name, body, size, base64.StdEncoding.EncodeToString(sum), "", opts)
	} else {
		if err := rd.Rewind(); err != nil {
			return b.opError("save", h, fmt.Errorf("rewind data: %w", err))
		}
		opts.PartSize = uint64(multipartThreshold)
		opts.SendContentMd5 = true
		info, err = b.client.PutObject(ctx, b.bucket, name, io.NopCloser(body), size, opts)
	}
	if err != nil {
		return b.opError("save", h, err)
	}
	if info.Size != size {
		return b.opError("save", h, fmt.Errorf("server stored %d bytes, want %d", info.Size, size))
	}
	return nil
}

// md5Of reads rd to the end and returns its MD5, checking that it yields
// exactly size bytes.
func md5Of(rd io.Reader, size int64) ([]byte, error) {
	h := md5.New()
	n, err := io.Copy(h, io.LimitReader(rd, size+1))
	if err != nil {
		return nil, fmt.Errorf("read data: %w", err)
	}
	if n != size {
		return nil, fmt.Errorf("reader yielded %d bytes, want %d", n, size)
	}
	return h.Sum(nil), nil
}

// uploadBody is the body of a PUT. It stops yielding data once ctx is
// cancelled, so that a cancelled upload cannot run to completion on the
// wire after Save has returned (the transport may keep copying the body for
// a moment after it noticed the cancellation). Seek makes it rewindable for
// minio-go, which seeks to the start before each attempt of a request.
type uploadBody struct {
	ctx context.Context
	rd  backend.RewindReader
}

func (b *uploadBody) Read(p []byte) (int, error) {
	if err := b.ctx.Err(); err != nil {
		return 0, err
	}
	return b.rd.Read(p)
}

func (b *uploadBody) Seek(offset int64, whence int) (int64, error) {
	if offset != 0 || whence != io.SeekStart {
		return 0, fmt.Errorf("seek to %d (whence %d): only rewinding to the start is supported", offset, whence)
	}
	return 0, b.rd.Rewind()
}

// Stat returns the size of h from a HEAD request.
func (b *Backend) Stat(ctx context.Context, h backend.Handle) (backend.FileInfo, error) {
	size, err := b.stat(ctx, h)
	if err != nil {
		return backend.FileInfo{}, err
	}
	return backend.FileInfo{Name: h.Name, Size: size}, nil
}

func (b *Backend) stat(ctx context.Context, h backend.Handle) (int64, error) {
	name, err := b.objectName(h)
	if err != nil {
		return 0, b.opError("stat", h, err)
	}
	info, err := b.client.StatObject(ctx, b.bucket, name, minio.StatObjectOptions{})
	if err != nil {
		return 0, b.opError("stat", h, err)
	}
	return info.Size, nil
}

// Remove deletes h. S3 reports success for a missing object, so Remove asks
// with HEAD first to report fs.ErrNotExist as the contract wants.
func (b *Backend) Remove(ctx context.Context, h backend.Handle) error {
	name, err := b.objectName(h)
	if err != nil {
		return b.opError("remove", h, err)
	}
	if _, err := b.client.StatObject(ctx, b.bucket, name, minio.StatObjectOptions{}); err != nil {
		return b.opError("remove", h, err)
	}
	if err := b.client.RemoveObject(ctx, b.bucket, name, minio.RemoveObjectOptions{}); err != nil {
		return b.opError("remove", h, err)
	}
	return nil
}

// List calls fn for every object of type t: a recursive listing below
// <prefix>/data/ for packs, a flat one for the other types. Names that are
// not 64-character hex IDs are skipped.
func (b *Backend) List(ctx context.Context, t backend.FileType, fn func(backend.FileInfo) error) error {
	dir := t.Dir()
	if dir == "" {
		return fmt.Errorf("s3: list %v at %s: not a directory type", t, b.location)
	}
	prefix := path.Join(b.prefix, dir) + "/"
	// Cancelling stops minio-go's listing goroutine when List returns early.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	objects := b.client.ListObjects(ctx, b.bucket, minio.ListObjectsOptions{
		Prefix:    prefix,
		Recursive: t == backend.PackFile,
		UseV1:     b.listV1,
	})
	for obj := range objects {
		if obj.Err != nil {
			return fmt.Errorf("s3: list %s at %s: %w", dir, b.location, mapError("list", obj.Err))
		}
		name := path.Base(strings.TrimPrefix(obj.Key, prefix))
		if strings.HasSuffix(obj.Key, "/") || !backend.IsValidName(name) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("s3: list %s at %s: %w", dir, b.location, err)
		}
		if err := fn(backend.FileInfo{Name: name, Size: obj.Size}); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("s3: list %s at %s: %w", dir, b.location, err)
	}
	return nil
}
