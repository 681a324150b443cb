package repo

import (
	"fmt"
	"runtime"
	"strings"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Compression is the zstd setting for data blobs in v2 repositories, like
// restic's --compression. Trees and index, snapshot and lock files are always
// compressed in v2, whatever the setting (restic does the same).
type Compression uint8

// Compression modes.
const (
	CompressionAuto    Compression = iota // zstd default level (the zero value)
	CompressionOff                        // data blobs stored uncompressed
	CompressionMax                        // zstd best compression
	CompressionFastest                    // zstd fastest
	CompressionBetter                     // zstd better compression
)

// ParseCompression parses restic's names: auto, off, max, fastest, better.
func ParseCompression(s string) (Compression, error) {
	switch strings.ToLower(s) {
	case "auto", "":
		return CompressionAuto, nil
	case "off":
		return CompressionOff, nil
	case "max":
		return CompressionMax, nil
	case "fastest":
		return CompressionFastest, nil
	case "better":
		return CompressionBetter, nil
	}
	return 0, fmt.Errorf("invalid compression mode %q (want auto, off, max, fastest or better)", s)
}

func (c Compression) String() string {
	return [...]string{"auto", "off", "max", "fastest", "better"}[c]
}

func (c Compression) level() zstd.EncoderLevel {
	switch c {
	case CompressionMax:
		return zstd.SpeedBestCompression
	case CompressionFastest:
		return zstd.SpeedFastest
	case CompressionBetter:
		return zstd.SpeedBetterCompression
	}
	return zstd.SpeedDefault
}

// zstd encoders and decoders are expensive to build and safe for concurrent
// EncodeAll/DecodeAll, so one of each per level is shared process-wide.
var (
	encMu    sync.Mutex
	encoders = map[zstd.EncoderLevel]*zstd.Encoder{}
	decOnce  sync.Once
	decoder  *zstd.Decoder
)

func encoderFor(level zstd.EncoderLevel) *zstd.Encoder {
	encMu.Lock()
	defer encMu.Unlock()
	if e, ok := encoders[level]; ok {
		return e
	}
	e, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(level),
		// The blob ID and the MAC already protect the data: skip zstd's
		// checksum, like restic (4 bytes less per blob).
		zstd.WithEncoderCRC(false),
		// 512 KiB is enough look-behind for blobs, which are about 1 MiB.
		zstd.WithWindowSize(512*1024),
		// EncodeAll takes one of the encoder's internal encoders for the
		// whole call; with one of them, every blob worker would wait for
		// the others and compression (half of a backup's CPU) would run
		// on one core. One per core, like restic's default.
		zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)),
		zstd.WithLowerEncoderMem(true),
	)
	if err != nil {
		panic(fmt.Sprintf("zstd encoder: %v", err)) // only for invalid options
	}
	encoders[level] = e
	return e
}

func zstdDecoder() *zstd.Decoder {
	decOnce.Do(func() {
		var err error
		decoder, err = zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(0),
			// Blobs are at most a few MiB, but a hostile frame may claim
			// more: cap what one frame can make us allocate.
			zstd.WithDecoderMaxMemory(1<<30),
		)
		if err != nil {
			panic(fmt.Sprintf("zstd decoder: %v", err))
		}
	})
	return decoder
}

// compress appends the zstd frame of src to dst.
func compress(level zstd.EncoderLevel, dst, src []byte) []byte {
	return encoderFor(level).EncodeAll(src, dst)
}

// decompress decodes one zstd payload into dst[:0]. maxLen bounds the
// output when the expected length is known (0 = unknown).
func decompress(dst, src []byte, maxLen int) ([]byte, error) {
	if maxLen > 0 && cap(dst) < maxLen {
		dst = make([]byte, 0, maxLen)
	}
	out, err := zstdDecoder().DecodeAll(src, dst[:0])
	if err != nil {
		return nil, fmt.Errorf("decompress: %w", err)
	}
	return out, nil
}
