package content

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"testing"
)

// The packaging benchmarks compare Package against its same-run bound: AES-256-GCM then SHA-256
// of each chunk in one goroutine, with no reading or ordering. Ratios:
//
//	go test ./node/content -run '^$' -bench Pack -benchtime 64x
const benchSize = 64 << 20

func benchInput(b *testing.B) []byte {
	b.Helper()
	plain := make([]byte, benchSize)
	rand.Read(plain)
	b.SetBytes(benchSize)
	b.ResetTimer()
	return plain
}

func BenchmarkPackBound(b *testing.B) {
	plain := benchInput(b)
	key, _ := NewKey()
	s, _ := NewSealer(key, make([]byte, SaltSize), benchSize/DefaultChunkSize)
	ct := make([]byte, 0, DefaultChunkSize+Overhead)
	for b.Loop() {
		for i := uint64(0); i < benchSize/DefaultChunkSize; i++ {
			ct = s.Seal(ct[:0], i, plain[i*DefaultChunkSize:(i+1)*DefaultChunkSize])
			_ = sha256.Sum256(ct)
		}
	}
}

func benchPackage(b *testing.B, workers int) {
	plain := benchInput(b)
	key, _ := NewKey()
	salt := make([]byte, SaltSize)
	for b.Loop() {
		if _, err := Package(context.Background(), bytes.NewReader(plain), benchSize, DefaultChunkSize, key, salt, workers, func(uint64, []byte) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPackSerial(b *testing.B)   { benchPackage(b, 1) }
func BenchmarkPackParallel(b *testing.B) { benchPackage(b, 2) }
