package rest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/internal/stall"
)

// The protocol versions are negotiated through these media types (Accept
// on requests, Content-Type on list answers).
const (
	ContentTypeV1 = "application/vnd.x.restic.rest.v1"
	ContentTypeV2 = "application/vnd.x.restic.rest.v2"
)

// Backend is a repository on a REST server. It is safe for concurrent use.
type Backend struct {
	base        url.URL // repository URL without userinfo, path ending in "/"
	user        *url.Userinfo
	location    string // redacted, for Location and errors
	connections uint
	client      *http.Client
	own         *http.Transport // the transport Open built, closed by Close
}

// Compile-time checks of the capabilities the repository looks for.
var (
	_ backend.Backend  = (*Backend)(nil)
	_ backend.Creator  = (*Backend)(nil)
	_ backend.Replacer = (*Backend)(nil)
)

// Open returns a backend for the repository cfg names. It does not contact
// the server. rt carries the requests; when it is nil, Open builds a
// transport from cfg's TLS settings. Passing rt together with TLS settings
// in cfg is an error, because they would be silently ignored.
func Open(ctx context.Context, cfg Config, rt http.RoundTripper) (*Backend, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("rest: open %v: %w", cfg, err)
	}
	if cfg.URL.Scheme != "http" && cfg.URL.Scheme != "https" || cfg.URL.Host == "" {
		return nil, fmt.Errorf("rest: open %v: URL must be http:// or https:// with a host", cfg)
	}
	b := &Backend{
		base:        cfg.URL,
		user:        cfg.URL.User,
		location:    cfg.String(),
		connections: cfg.Connections,
	}
	b.base.User = nil
	b.base.RawQuery, b.base.Fragment = "", ""
	if !strings.HasSuffix(b.base.Path, "/") {
		b.base.Path += "/"
		if b.base.RawPath != "" {
			b.base.RawPath += "/"
		}
	}
	if b.connections == 0 {
		b.connections = DefaultConnections
	}
	if rt == nil {
		tr, err := newTransport(cfg)
		if err != nil {
			return nil, fmt.Errorf("rest: open %v: %w", cfg, err)
		}
		b.own, rt = tr, tr
	} else if len(cfg.RootCAFiles) > 0 || cfg.ClientCertFile != "" || cfg.socket != "" {
		return nil, fmt.Errorf("rest: open %v: TLS files and Unix sockets in the config need the built-in transport, but a RoundTripper was passed", cfg)
	}
	// A server that hangs mid-transfer must not hang the caller: the
	// watchdog turns it into a transient error.
	b.client = &http.Client{Transport: stall.RoundTripper(rt, cfg.StuckRequestTimeout)}
	return b, nil
}

// Location returns the repository location with the password redacted.
func (b *Backend) Location() string { return b.location }

// Connections returns the configured number of concurrent requests.
func (b *Backend) Connections() uint { return b.connections }

// HasAtomicReplace reports false: rest-server refuses to overwrite any file,
// the config included, so restic replaces the config by delete and save.
func (b *Backend) HasAtomicReplace() bool { return false }

// Close releases idle connections of the transport Open built.
func (b *Backend) Close() error {
	if b.own != nil {
		b.own.CloseIdleConnections()
	}
	return nil
}

// Create makes the server create the repository's directories (POST
// ?create=true). Like restic it refuses a location that already holds a
// config, so a repository cannot be initialised twice; a location with
// directories or files but no config is fine.
func (b *Backend) Create(ctx context.Context) error {
	_, err := b.head(ctx, backend.Handle{Type: backend.ConfigFile})
	switch {
	case err == nil:
		return fmt.Errorf("rest: create repository at %s: config file already exists", b.location)
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("rest: create repository at %s: check for a config: %w", b.location, err)
	}
	u := b.base
	u.RawQuery = "create=true"
	req, err := b.newRequest(ctx, http.MethodPost, u.String(), http.NoBody)
	if err != nil {
		return b.opError("create", backend.Handle{Type: backend.ConfigFile}, err)
	}
	// restic sends this exact type and no Accept header.
	req.Header.Del("Accept")
	req.Header.Set("Content-Type", "binary/octet-stream")
	resp, err := b.client.Do(req)
	if err != nil {
		return fmt.Errorf("rest: create repository at %s: %w", b.location, err)
	}
	discard(resp)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("rest: create repository at %s: %w", b.location,
			&StatusError{Op: "create", StatusCode: resp.StatusCode, Status: resp.Status})
	}
	return nil
}

// fileURL returns the URL of h: {base}config or {base}{type}/{name}. Packs
// have no data/XX level in REST URLs.
func (b *Backend) fileURL(h backend.Handle) (string, error) {
	if err := h.Valid(); err != nil {
		return "", err
	}
	if h.Type == backend.ConfigFile {
		return b.base.JoinPath("config").String(), nil
	}
	return b.base.JoinPath(h.Type.Dir(), h.Name).String(), nil
}

// newRequest builds a request with basic authentication and the v2 Accept
// header every restic request but create carries.
func (b *Backend) newRequest(ctx context.Context, method, url string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", ContentTypeV2)
	if b.user != nil {
		password, _ := b.user.Password()
		req.SetBasicAuth(b.user.Username(), password)
	}
	return req, nil
}

// Save uploads rd to h with POST. rest-server writes to a temporary file
// and renames it, so a broken upload leaves nothing under h.
func (b *Backend) Save(ctx context.Context, h backend.Handle, rd backend.RewindReader) error {
	u, err := b.fileURL(h)
	if err != nil {
		return b.opError("save", h, err)
	}
	if err := rd.Rewind(); err != nil {
		return b.opError("save", h, fmt.Errorf("rewind data: %w", err))
	}
	length := rd.Length()
	if length < 0 {
		return b.opError("save", h, fmt.Errorf("negative length %d", length))
	}
	if h.Type == backend.ConfigFile {
		// rest-server writes the config straight under its final name, so
		// an upload that breaks off leaves a partial config behind. The
		// config is small: read it first, so a failing reader fails here.
		buf, err := readExactly(rd, length)
		if err != nil {
			return b.opError("save", h, err)
		}
		rd = backend.NewByteReader(buf, false)
	}
	// A zero ContentLength with a non-nil body would be sent chunked.
	var body io.Reader = http.NoBody
	if length > 0 {
		body = &uploadBody{ctx: ctx, rd: rd}
	}
	req, err := b.newRequest(ctx, http.MethodPost, u, body)
	if err != nil {
		return b.opError("save", h, err)
	}
	req.ContentLength = length
	if length > 0 {
		req.GetBody = func() (io.ReadCloser, error) {
			if err := rd.Rewind(); err != nil {
				return nil, err
			}
			return &uploadBody{ctx: ctx, rd: rd}, nil
		}
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := b.client.Do(req)
	if err != nil {
		return b.opError("save", h, err)
	}
	discard(resp)
	if resp.StatusCode != http.StatusOK {
		return b.opError("save", h, &StatusError{Op: "save", StatusCode: resp.StatusCode, Status: resp.Status})
	}
	return nil
}

// Stat returns the size of h from a HEAD request.
func (b *Backend) Stat(ctx context.Context, h backend.Handle) (backend.FileInfo, error) {
	size, err := b.head(ctx, h)
	if err != nil {
		return backend.FileInfo{}, b.opError("stat", h, err)
	}
	return backend.FileInfo{Name: h.Name, Size: size}, nil
}

// head returns the size the server reports for h.
func (b *Backend) head(ctx context.Context, h backend.Handle) (int64, error) {
	u, err := b.fileURL(h)
	if err != nil {
		return 0, err
	}
	req, err := b.newRequest(ctx, http.MethodHead, u, nil)
	if err != nil {
		return 0, err
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return 0, err
	}
	discard(resp)
	if resp.StatusCode != http.StatusOK {
		return 0, &StatusError{Op: "stat", StatusCode: resp.StatusCode, Status: resp.Status}
	}
	if resp.ContentLength < 0 {
		return 0, errors.New("server sent no Content-Length for HEAD")
	}
	return resp.ContentLength, nil
}

// Remove deletes h. rest-server answers 200 for a missing file, so Remove
// asks with HEAD first to report fs.ErrNotExist as the contract wants.
func (b *Backend) Remove(ctx context.Context, h backend.Handle) error {
	if _, err := b.head(ctx, h); err != nil {
		return b.opError("remove", h, err)
	}
	u, err := b.fileURL(h)
	if err != nil {
		return b.opError("remove", h, err)
	}
	req, err := b.newRequest(ctx, http.MethodDelete, u, nil)
	if err != nil {
		return b.opError("remove", h, err)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return b.opError("remove", h, err)
	}
	discard(resp)
	if resp.StatusCode != http.StatusOK {
		return b.opError("remove", h, &StatusError{Op: "remove", StatusCode: resp.StatusCode, Status: resp.Status})
	}
	return nil
}

// maxDrain bounds how much of an unread body is read to keep its
// connection reusable; a longer rest is cheaper to drop with the connection.
const maxDrain = 64 << 10

// discard reads what is left of resp's body, up to maxDrain, and closes it.
func discard(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	_ = resp.Body.Close()
}

// uploadBody is the body of a POST. It stops yielding data once ctx is
// cancelled, so that a cancelled upload cannot run to completion on the
// wire after Save has returned: the transport may keep copying the body for
// a moment after it noticed the cancellation, and the server would then
// store a file whose Save reported failure. Close is a no-op because the
// caller owns the reader.
type uploadBody struct {
	ctx context.Context
	rd  io.Reader
}

func (b *uploadBody) Read(p []byte) (int, error) {
	if err := b.ctx.Err(); err != nil {
		return 0, err
	}
	return b.rd.Read(p)
}

func (b *uploadBody) Close() error { return nil }

// maxConfigSize bounds the config Save buffers; restic's is a few hundred
// bytes.
const maxConfigSize = 16 << 20

// readExactly reads all of rd and checks that it yields exactly n bytes.
func readExactly(rd io.Reader, n int64) ([]byte, error) {
	if n > maxConfigSize {
		return nil, fmt.Errorf("config of %d bytes exceeds the limit of %d", n, maxConfigSize)
	}
	buf := make([]byte, n+1)
	got, err := io.ReadFull(rd, buf)
	switch {
	case int64(got) == n && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)):
		return buf[:n], nil
	case err == nil:
		return nil, fmt.Errorf("reader yields more than its length of %d bytes", n)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return nil, fmt.Errorf("reader yielded %d bytes, want %d", got, n)
	default:
		return nil, fmt.Errorf("read data: %w", err)
	}
}

// parseInt64 parses a non-negative decimal number.
func parseInt64(s string) (int64, bool) {
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && n >= 0
}
