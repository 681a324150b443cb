package repo

import (
	"context"
	"fmt"

	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/tree"
)

// LoadTree loads and decodes a tree blob.
func (r *Repository) LoadTree(ctx context.Context, id blob.ID) (*tree.Tree, error) {
	buf, err := r.LoadBlob(ctx, blob.TreeBlob, id, nil)
	if err != nil {
		return nil, err
	}
	t, err := tree.Decode(buf)
	if err != nil {
		return nil, fmt.Errorf("decode tree %s: %w", id.Str(), err)
	}
	return t, nil
}
