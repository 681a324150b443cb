package rest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"strings"

	"github.com/cairn-backup/cairn/backend"
)

// List calls fn for every file of type t. It asks for a v2 listing (names
// and sizes); a server that answers in v1 sends only names, and the sizes
// then come from one HEAD each. A 404 means an empty directory, except from
// rclone, which uses 404 for some internal errors (and rest-server answers
// 404 in a race, see listAttempts). Names that are not
// 64-character hex IDs are skipped.
func (b *Backend) List(ctx context.Context, t backend.FileType, fn func(backend.FileInfo) error) error {
	dir := t.Dir()
	if dir == "" {
		return fmt.Errorf("rest: list %v at %s: not a directory type", t, b.location)
	}
	if err := ctx.Err(); err != nil {
		return b.listError(t, err)
	}
	resp, err := b.listRequest(ctx, b.base.JoinPath(dir).String()+"/")
	if err != nil {
		return b.listError(t, err)
	}
	if resp == nil { // missing directory
		return nil
	}
	defer discard(resp)
	dec := json.NewDecoder(resp.Body)
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return b.listError(t, fmt.Errorf("decode listing: want a JSON array (token %v, %v)", tok, err))
	}
	mediaType, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	v2 := mediaType == ContentTypeV2
	for dec.More() {
		var fi backend.FileInfo
		if v2 {
			var item struct {
				Name string `json:"name"`
				Size int64  `json:"size"`
			}
			if err := dec.Decode(&item); err != nil {
				return b.listError(t, fmt.Errorf("decode v2 listing: %w", err))
			}
			if item.Size < 0 {
				return b.listError(t, fmt.Errorf("listing reports size %d for %q", item.Size, item.Name))
			}
			fi = backend.FileInfo{Name: item.Name, Size: item.Size}
			if !backend.IsValidName(fi.Name) {
				continue
			}
		} else {
			if err := dec.Decode(&fi.Name); err != nil {
				return b.listError(t, fmt.Errorf("decode v1 listing: %w", err))
			}
			if !backend.IsValidName(fi.Name) {
				continue
			}
			size, err := b.head(ctx, backend.Handle{Type: t, Name: fi.Name})
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed since the listing was made
			}
			if err != nil {
				return b.listError(t, fmt.Errorf("stat %s: %w", fi.Name, err))
			}
			fi.Size = size
		}
		if err := ctx.Err(); err != nil {
			return b.listError(t, err)
		}
		if err := fn(fi); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return b.listError(t, err)
		}
	}
	if _, err := dec.Token(); err != nil {
		return b.listError(t, fmt.Errorf("decode listing: %w", err))
	}
	return nil
}

// listAttempts is how often a listing answered with 404 is asked again.
// rest-server 0.14 answers 404 when a file disappears between reading the
// directory and stating its entries, which happens whenever an upload
// renames its temporary file or a file is deleted at that moment; the
// window is tiny, so asking again right away gets the real listing.
const listAttempts = 3

// listRequest GETs a listing and returns the response with status 200, or
// nil for a missing directory.
func (b *Backend) listRequest(ctx context.Context, url string) (*http.Response, error) {
	for range listAttempts {
		req, err := b.newRequest(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, err
		}
		resp, err := b.client.Do(req)
		if err != nil {
			return nil, err
		}
		switch {
		case resp.StatusCode == http.StatusOK:
			return resp, nil
		case resp.StatusCode == http.StatusNotFound && !strings.HasPrefix(resp.Header.Get("Server"), "rclone/"):
			discard(resp)
			continue
		}
		discard(resp)
		return nil, &StatusError{Op: "list", StatusCode: resp.StatusCode, Status: resp.Status}
	}
	return nil, nil
}

func (b *Backend) listError(t backend.FileType, err error) error {
	return fmt.Errorf("rest: list %s at %s: %w", t.Dir(), b.location, err)
}
