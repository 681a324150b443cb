package repo

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"sort"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/repo/blob"
)

// ErrWrongPassword means no key file opened with the password.
var ErrWrongPassword = errors.New("wrong password or no key found")

// maxKeysTried is how many key files Open tries without a hint, like restic.
const maxKeysTried = 20

// keyFile is the JSON of keys/<id>, field order as restic writes it.
type keyFile struct {
	Created  time.Time `json:"created"`
	Username string    `json:"username"`
	Hostname string    `json:"hostname"`
	KDF      string    `json:"kdf"`
	N        int       `json:"N"`
	R        int       `json:"r"`
	P        int       `json:"p"`
	Salt     []byte    `json:"salt"`
	Data     []byte    `json:"data"`
}

// KeyInfo describes a key file.
type KeyInfo struct {
	ID       blob.ID
	Created  time.Time
	Username string
	Hostname string
	Params   crypto.Params
	// Current is set for the key the repository was opened with.
	Current bool
}

// KeyOptions are the informational fields and KDF cost of a new key. Zero
// values mean: the current OS user and host, and calibrated scrypt
// parameters like restic's.
type KeyOptions struct {
	Username string
	Hostname string
	// Params overrides the scrypt parameters (tests use crypto.TestParams).
	Params *crypto.Params
}

// defaultKeyParams replaces calibration when set; only a binary built with
// the cairn_testkdf tag sets it (see testkdf.go).
var defaultKeyParams *crypto.Params

func (o KeyOptions) withDefaults(ctx context.Context) (KeyOptions, crypto.Params, error) {
	if o.Username == "" {
		if u, err := user.Current(); err == nil {
			o.Username = u.Username
		}
	}
	if o.Hostname == "" {
		o.Hostname, _ = os.Hostname()
	}
	if o.Params == nil {
		o.Params = defaultKeyParams
	}
	if o.Params != nil {
		return o, *o.Params, o.Params.Validate()
	}
	// restic calibrates for 500 ms and at most 60 MiB.
	p, err := crypto.Calibrate(ctx, 500*time.Millisecond, 60<<20)
	return o, p, err
}

// writeKey seals master with a key derived from password and stores it as a
// new key file.
func writeKey(ctx context.Context, be backend.Backend, password string, master *crypto.Key, opts KeyOptions) (blob.ID, error) {
	opts, params, err := opts.withDefaults(ctx)
	if err != nil {
		return blob.ID{}, fmt.Errorf("key parameters: %w", err)
	}
	salt := crypto.NewSalt()
	user, err := crypto.KDF(params, salt, password)
	if err != nil {
		return blob.ID{}, err
	}
	mk, err := json.Marshal(master)
	if err != nil {
		return blob.ID{}, err
	}
	kf := keyFile{
		Created: time.Now(), Username: opts.Username, Hostname: opts.Hostname,
		KDF: "scrypt", N: params.N, R: params.R, P: params.P,
		Salt: salt, Data: user.Seal(nil, mk),
	}
	buf, err := json.Marshal(&kf)
	if err != nil {
		return blob.ID{}, err
	}
	id := blob.ID(sha256.Sum256(buf))
	h := backend.Handle{Type: backend.KeyFile, Name: id.String()}
	if err := be.Save(ctx, h, backend.NewByteReader(buf, false)); err != nil {
		return blob.ID{}, fmt.Errorf("save key %s: %w", id.Str(), err)
	}
	return id, nil
}

// loadKeyFile loads and parses keys/<id>, checking that the content hashes
// to the name.
func loadKeyFile(ctx context.Context, be backend.Backend, id blob.ID) (*keyFile, error) {
	buf, err := backend.LoadAll(ctx, be, backend.Handle{Type: backend.KeyFile, Name: id.String()})
	if err != nil {
		return nil, fmt.Errorf("load key %s: %w", id.Str(), err)
	}
	if blob.ID(sha256.Sum256(buf)) != id {
		return nil, fmt.Errorf("load key %s: content does not match its name (damaged file)", id.Str())
	}
	var kf keyFile
	if err := json.Unmarshal(buf, &kf); err != nil {
		return nil, fmt.Errorf("load key %s: %w", id.Str(), err)
	}
	if kf.KDF != "scrypt" {
		return nil, fmt.Errorf("load key %s: unsupported KDF %q (only scrypt)", id.Str(), kf.KDF)
	}
	return &kf, nil
}

// openKeyFile derives the user key and decrypts the master key. A MAC
// failure returns ErrWrongPassword; anything else is damage.
func openKeyFile(kf *keyFile, id blob.ID, password string) (*crypto.Key, error) {
	user, err := crypto.KDF(crypto.Params{N: kf.N, R: kf.R, P: kf.P}, kf.Salt, password)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", id.Str(), err)
	}
	plain, err := user.Open(nil, kf.Data)
	if err != nil {
		if errors.Is(err, crypto.ErrUnauthenticated) {
			return nil, ErrWrongPassword
		}
		return nil, fmt.Errorf("key %s: %w", id.Str(), err)
	}
	var master crypto.Key
	if err := json.Unmarshal(plain, &master); err != nil {
		return nil, fmt.Errorf("key %s: %w", id.Str(), err)
	}
	if !master.Valid() {
		return nil, fmt.Errorf("key %s: invalid master key for repository", id.Str())
	}
	return &master, nil
}

// findKey tries key files until one opens with password: the hinted key
// first, then up to maxKeysTried others (all of them if maxKeys < 0).
func findKey(ctx context.Context, be backend.Backend, password string, hint string, maxKeys int) (*crypto.Key, blob.ID, error) {
	var ids []blob.ID
	err := be.List(ctx, backend.KeyFile, func(fi backend.FileInfo) error {
		id, err := blob.ParseID(fi.Name)
		if err == nil {
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return nil, blob.ID{}, fmt.Errorf("list keys: %w", err)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i].String() < ids[j].String() })
	if hint != "" {
		for i, id := range ids {
			if len(hint) <= 64 && id.String()[:len(hint)] == hint {
				ids[0], ids[i] = ids[i], ids[0]
				break
			}
		}
	}
	tried := 0
	var damaged []error
	for _, id := range ids {
		if maxKeys >= 0 && tried >= maxKeys && hint == "" {
			break
		}
		tried++
		kf, err := loadKeyFile(ctx, be, id)
		if err != nil {
			if ctx.Err() != nil {
				return nil, blob.ID{}, ctx.Err()
			}
			// A damaged key file must not hide a good one: note it and go on.
			damaged = append(damaged, err)
			continue
		}
		master, err := openKeyFile(kf, id, password)
		if errors.Is(err, ErrWrongPassword) {
			continue
		}
		if err != nil {
			return nil, blob.ID{}, err
		}
		return master, id, nil
	}
	if len(damaged) > 0 {
		return nil, blob.ID{}, fmt.Errorf("%w (%d key files could not be read: %w)", ErrWrongPassword, len(damaged), errors.Join(damaged...))
	}
	return nil, blob.ID{}, ErrWrongPassword
}

// Keys lists the repository's key files. Unreadable key files are returned
// with only their ID set.
func (r *Repository) Keys(ctx context.Context) ([]KeyInfo, error) {
	var out []KeyInfo
	err := r.be.List(ctx, backend.KeyFile, func(fi backend.FileInfo) error {
		id, err := blob.ParseID(fi.Name)
		if err != nil {
			return nil
		}
		info := KeyInfo{ID: id, Current: id == r.keyID}
		if kf, err := loadKeyFile(ctx, r.be, id); err == nil {
			info.Created, info.Username, info.Hostname = kf.Created, kf.Username, kf.Hostname
			info.Params = crypto.Params{N: kf.N, R: kf.R, P: kf.P}
		}
		out = append(out, info)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, nil
}

// AddKey stores a new key file for password that opens the same master key.
func (r *Repository) AddKey(ctx context.Context, password string, opts KeyOptions) (blob.ID, error) {
	return writeKey(ctx, r.be, password, r.key, opts)
}

// RemoveKey deletes a key file. The key the repository was opened with
// cannot be removed (use ChangePassword).
func (r *Repository) RemoveKey(ctx context.Context, id blob.ID) error {
	if id == r.keyID {
		return fmt.Errorf("refusing to remove key %s: it is the key currently used", id.Str())
	}
	h := backend.Handle{Type: backend.KeyFile, Name: id.String()}
	if _, err := r.be.Stat(ctx, h); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("key %s does not exist: %w", id.Str(), err)
		}
		return fmt.Errorf("stat key %s: %w", id.Str(), err)
	}
	if err := r.be.Remove(ctx, h); err != nil {
		return fmt.Errorf("remove key %s: %w", id.Str(), err)
	}
	return nil
}

// ChangePassword adds a key for the new password and then removes the key
// the repository was opened with, so a failure in between leaves both keys.
func (r *Repository) ChangePassword(ctx context.Context, password string, opts KeyOptions) (blob.ID, error) {
	id, err := writeKey(ctx, r.be, password, r.key, opts)
	if err != nil {
		return blob.ID{}, err
	}
	old := r.keyID
	r.keyID = id
	if err := r.be.Remove(ctx, backend.Handle{Type: backend.KeyFile, Name: old.String()}); err != nil {
		return id, fmt.Errorf("new key %s added, but removing the old key %s failed: %w", id.Str(), old.Str(), err)
	}
	return id, nil
}

// KeyID is the key file the repository was opened with.
func (r *Repository) KeyID() blob.ID { return r.keyID }
