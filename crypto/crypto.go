package crypto

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"

	"golang.org/x/crypto/poly1305"
)

// Sizes of the parts of a sealed box.
const (
	IVSize   = aes.BlockSize // 16
	MACSize  = poly1305.TagSize
	Overhead = IVSize + MACSize // bytes a sealed box adds to its plaintext
)

// ErrUnauthenticated means a sealed box failed its MAC check: wrong key, or
// the data is corrupt.
var ErrUnauthenticated = errors.New("ciphertext verification failed")

// Key is the key material for sealing and opening boxes: a 32-byte AES-256
// key for encryption and the Poly1305-AES MAC key (k, r). The zero Key is not
// usable; get one from NewRandomKey, KDF or by unmarshalling a master key.
type Key struct {
	Encrypt [32]byte
	MACK    [16]byte // AES-128 key that turns the IV into the Poly1305 nonce s
	MACR    [16]byte // Poly1305 r, stored unclamped (poly1305 clamps it)

	// Cached block ciphers; built lazily because Keys are also created by
	// JSON decoding and struct literals.
	enc  cipher.Block
	macK cipher.Block
}

// NewRandomKey returns a fresh key from the system's CSPRNG.
func NewRandomKey() *Key {
	k := &Key{}
	mustRead(k.Encrypt[:])
	mustRead(k.MACK[:])
	mustRead(k.MACR[:])
	k.init()
	return k
}

func mustRead(b []byte) {
	// crypto/rand.Read never fails since Go 1.24 (it crashes the program
	// instead), so there is no error to handle.
	_, _ = rand.Read(b)
}

// Valid reports whether all three parts of the key are non-zero, the check
// restic applies to a decoded master key.
func (k *Key) Valid() bool {
	return k != nil && k.Encrypt != [32]byte{} && k.MACK != [16]byte{} && k.MACR != [16]byte{}
}

func (k *Key) init() {
	if k.enc != nil {
		return
	}
	// The key sizes are fixed, so aes.NewCipher cannot fail.
	k.enc, _ = aes.NewCipher(k.Encrypt[:])
	k.macK, _ = aes.NewCipher(k.MACK[:])
}

// prepare returns a copy-free handle with cached ciphers. Keys are shared
// between goroutines, so the lazy init must not race: callers go through
// blocks(), which builds local ciphers when the cache is empty.
func (k *Key) blocks() (enc, macK cipher.Block) {
	if k.enc != nil && k.macK != nil {
		return k.enc, k.macK
	}
	enc, _ = aes.NewCipher(k.Encrypt[:])
	macK, _ = aes.NewCipher(k.MACK[:])
	return enc, macK
}

// Prepare caches the block ciphers. It must be called before the key is shared
// between goroutines; the constructors in this package do so.
func (k *Key) Prepare() { k.init() }

func (k *Key) mac(out *[16]byte, iv, ciphertext []byte, macK cipher.Block) {
	var polyKey [32]byte
	copy(polyKey[:16], k.MACR[:])
	macK.Encrypt(polyKey[16:], iv)
	poly1305.Sum(out, ciphertext, &polyKey)
}

// Seal encrypts and authenticates plaintext with a fresh random IV and
// appends the sealed box to dst. dst and plaintext must not overlap.
func (k *Key) Seal(dst, plaintext []byte) []byte {
	enc, macK := k.blocks()
	n := len(dst)
	out := grow(dst, len(plaintext)+Overhead)
	box := out[n:]
	iv := box[:IVSize]
	for {
		mustRead(iv)
		// An all-zero IV is rejected by restic's Open; the chance is 2^-128,
		// but the rule is cheap to honour.
		if !allZero(iv) {
			break
		}
	}
	ct := box[IVSize : IVSize+len(plaintext)]
	cipher.NewCTR(enc, iv).XORKeyStream(ct, plaintext)
	var tag [16]byte
	k.mac(&tag, iv, ct, macK)
	copy(box[IVSize+len(plaintext):], tag[:])
	return out
}

// Open checks and decrypts a sealed box and appends the plaintext to dst.
// dst may be box[:0] to decrypt in place (the plaintext then starts at
// box[0], shifted by IVSize).
func (k *Key) Open(dst, box []byte) ([]byte, error) {
	if len(box) < Overhead {
		return nil, fmt.Errorf("sealed box of %d bytes is shorter than %d: %w", len(box), Overhead, ErrUnauthenticated)
	}
	enc, macK := k.blocks()
	iv := box[:IVSize]
	if allZero(iv) {
		return nil, fmt.Errorf("invalid all-zero IV: %w", ErrUnauthenticated)
	}
	ct := box[IVSize : len(box)-MACSize]
	var want [16]byte
	k.mac(&want, iv, ct, macK)
	if subtle.ConstantTimeCompare(want[:], box[len(box)-MACSize:]) != 1 {
		return nil, ErrUnauthenticated
	}
	// Copy the IV: when decrypting in place the keystream setup must not see
	// bytes the XOR below overwrites.
	var ivCopy [IVSize]byte
	copy(ivCopy[:], iv)
	n := len(dst)
	out := grow(dst, len(ct))
	pt := out[n:]
	if overlaps(pt, ct) {
		// In-place: move the ciphertext down first so source and destination
		// overlap exactly, as cipher.Stream requires.
		copy(pt, ct)
		ct = pt
	}
	cipher.NewCTR(enc, ivCopy[:]).XORKeyStream(pt, ct)
	return out, nil
}

// OpenInPlace checks and decrypts box and returns the plaintext, which
// reuses box's memory.
func (k *Key) OpenInPlace(box []byte) ([]byte, error) {
	if len(box) < Overhead {
		return nil, fmt.Errorf("sealed box of %d bytes is shorter than %d: %w", len(box), Overhead, ErrUnauthenticated)
	}
	return k.Open(box[:0], box)
}

func grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b[:len(b)+n]
	}
	nb := make([]byte, len(b)+n, len(b)+n)
	copy(nb, b)
	return nb
}

func overlaps(a, b []byte) bool {
	if len(a) == 0 || len(b) == 0 {
		return false
	}
	a0, a1 := &a[0], &a[len(a)-1]
	b0, b1 := &b[0], &b[len(b)-1]
	return !(uintptrOf(a1) < uintptrOf(b0) || uintptrOf(b1) < uintptrOf(a0))
}

func allZero(b []byte) bool {
	var acc byte
	for _, c := range b {
		acc |= c
	}
	return acc == 0
}

// masterKeyJSON is the plaintext inside a key file's data field.
type masterKeyJSON struct {
	MAC struct {
		K []byte `json:"k"`
		R []byte `json:"r"`
	} `json:"mac"`
	Encrypt []byte `json:"encrypt"`
}

// MarshalJSON writes the master-key JSON restic stores inside key files:
// {"mac":{"k":…,"r":…},"encrypt":…} with standard base64.
func (k *Key) MarshalJSON() ([]byte, error) {
	var j masterKeyJSON
	j.MAC.K = k.MACK[:]
	j.MAC.R = k.MACR[:]
	j.Encrypt = k.Encrypt[:]
	return json.Marshal(j)
}

// UnmarshalJSON reads the master-key JSON. Unlike restic, which silently
// truncates or zero-pads, it insists on the exact sizes 16/16/32.
func (k *Key) UnmarshalJSON(b []byte) error {
	var j masterKeyJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return fmt.Errorf("decode master key: %w", err)
	}
	if len(j.MAC.K) != 16 || len(j.MAC.R) != 16 || len(j.Encrypt) != 32 {
		return fmt.Errorf("decode master key: wrong sizes (k %d, r %d, encrypt %d bytes; want 16, 16, 32)",
			len(j.MAC.K), len(j.MAC.R), len(j.Encrypt))
	}
	*k = Key{}
	copy(k.MACK[:], j.MAC.K)
	copy(k.MACR[:], j.MAC.R)
	copy(k.Encrypt[:], j.Encrypt)
	k.init()
	return nil
}
