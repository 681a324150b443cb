package crypto

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/crypto/scrypt"
)

// SaltSize is the length of a key file's salt. restic rejects other lengths.
const SaltSize = 64

// Params are scrypt's cost parameters, stored in key files as N, r and p.
type Params struct {
	N int // CPU/memory cost, a power of two > 1
	R int // block size
	P int // parallelism
}

// DefaultParams are used when no calibration is wanted: restic's typical
// result (N=2^15, r=8) with p=1. They need 32 MiB per derivation.
var DefaultParams = Params{N: 32768, R: 8, P: 1}

// TestParams are cheap parameters for tests only: a derivation takes well
// under a millisecond, which is also trivial to brute-force.
var TestParams = Params{N: 1024, R: 1, P: 1}

// Validate checks the parameters the way scrypt needs them: N a power of two
// greater than 1, r and p at least 1, r·p < 2^30.
func (p Params) Validate() error {
	if p.N <= 1 || p.N&(p.N-1) != 0 {
		return fmt.Errorf("invalid scrypt N=%d: must be a power of two greater than 1", p.N)
	}
	if p.R < 1 || p.P < 1 || uint64(p.R)*uint64(p.P) >= 1<<30 {
		return fmt.Errorf("invalid scrypt r=%d p=%d", p.R, p.P)
	}
	// 128·N·r bytes of memory; refuse absurd values from a hostile key file
	// instead of trying to allocate them (2 GiB is far above anything restic
	// writes).
	if uint64(p.N)*uint64(p.R)*128 > 2<<30 {
		return fmt.Errorf("scrypt parameters N=%d r=%d need more than 2 GiB of memory", p.N, p.R)
	}
	return nil
}

// KDF derives a user key from password and salt: the 64 bytes of scrypt
// output are encrypt (32), MAC k (16) and MAC r (16).
func KDF(p Params, salt []byte, password string) (*Key, error) {
	if len(salt) != SaltSize {
		return nil, fmt.Errorf("scrypt salt has %d bytes, want %d", len(salt), SaltSize)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	out, err := scrypt.Key([]byte(password), salt, p.N, p.R, p.P, 64)
	if err != nil {
		return nil, fmt.Errorf("scrypt: %w", err)
	}
	k := &Key{}
	copy(k.Encrypt[:], out[:32])
	copy(k.MACK[:], out[32:48])
	copy(k.MACR[:], out[48:64])
	k.init()
	return k, nil
}

// NewSalt returns a fresh random salt.
func NewSalt() []byte {
	s := make([]byte, SaltSize)
	mustRead(s)
	return s
}

// Calibrate picks parameters the way restic does on init and key add: r=8,
// the largest power-of-two N that stays under maxMemory (128·N·r bytes),
// halved while one derivation takes longer than target, then p raised while
// a derivation stays within target. It costs a few derivations.
func Calibrate(ctx context.Context, target time.Duration, maxMemory int) (Params, error) {
	p := Params{N: 2, R: 8, P: 1}
	for 128*p.N*2*p.R < maxMemory {
		p.N *= 2
	}
	salt := NewSalt()
	measure := func(p Params) (time.Duration, error) {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		start := time.Now()
		if _, err := KDF(p, salt, "calibrate"); err != nil {
			return 0, err
		}
		return time.Since(start), nil
	}
	d, err := measure(p)
	if err != nil {
		return Params{}, err
	}
	for d > target && p.N > 1024 {
		p.N /= 2
		if d, err = measure(p); err != nil {
			return Params{}, err
		}
	}
	// Raise p while a derivation stays within the target. One measured
	// derivation predicts the cost of p linearly, so extrapolate instead of
	// measuring every step.
	if d > 0 {
		maxP := int(target / d)
		if maxP > 1 {
			p.P = maxP
		}
	}
	if p.P > 16 {
		p.P = 16
	}
	return p, p.Validate()
}
