package repo

import (
	"encoding/json"
	"fmt"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/repo/blob"
)

// Repository format versions.
const (
	MinVersion    = 1
	MaxVersion    = 2
	StableVersion = 2 // what init creates by default ("stable" and "latest")
)

// Config is the repository's config file.
type Config struct {
	// Version is 1 (no compression) or 2.
	Version uint
	// ID identifies the repository (64 hex characters); caches are keyed by it.
	ID string
	// Polynomial is the chunker polynomial all data in the repository is cut with.
	Polynomial chunk.Pol
}

type configJSON struct {
	Version    uint   `json:"version"`
	ID         string `json:"id"`
	Polynomial string `json:"chunker_polynomial"`
}

// NewConfig returns a config for a new repository with a random ID and,
// unless pol is non-zero, a random polynomial.
func NewConfig(version uint, pol chunk.Pol) (Config, error) {
	if version < MinVersion || version > MaxVersion {
		return Config{}, fmt.Errorf("unsupported repository version %d", version)
	}
	if pol == 0 {
		var err error
		if pol, err = chunk.RandomPolynomial(); err != nil {
			return Config{}, err
		}
	}
	return Config{Version: version, ID: blob.NewRandomID().String(), Polynomial: pol}, nil
}

func (c Config) marshal() ([]byte, error) {
	return json.Marshal(configJSON{Version: c.Version, ID: c.ID, Polynomial: chunk.FormatPol(c.Polynomial)})
}

func parseConfig(buf []byte) (Config, error) {
	var j configJSON
	if err := json.Unmarshal(buf, &j); err != nil {
		return Config{}, fmt.Errorf("decode config: %w", err)
	}
	if j.Version < MinVersion || j.Version > MaxVersion {
		return Config{}, fmt.Errorf("unsupported repository version %d", j.Version)
	}
	if j.ID == "" {
		return Config{}, fmt.Errorf("config has an empty id")
	}
	pol, err := chunk.ParsePol(j.Polynomial)
	if err != nil {
		return Config{}, err
	}
	return Config{Version: j.Version, ID: j.ID, Polynomial: pol}, nil
}
