package fl

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
)

// ParseFile reads and parses the safetensors file at path, as Parse does the same bytes, but
// checks the header before it reads the tensor data: a file over max bytes, or whose header is
// malformed, is refused after reading at most 8 + MaxHeader bytes.
func ParseFile(path string, max int64) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := fi.Size()
	if size > max {
		return nil, fmt.Errorf("%w: %d bytes exceeds the %d-byte limit", ErrFormat, size, max)
	}
	if size < 8 {
		return nil, fmt.Errorf("%w: %d bytes is too short for a header", ErrFormat, size)
	}
	var lenBuf [8]byte
	if _, err := io.ReadFull(f, lenBuf[:]); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > MaxHeader || n > uint64(size-8) {
		return nil, fmt.Errorf("%w: header length %d exceeds the file or the %d-byte cap", ErrFormat, n, MaxHeader)
	}
	h := make([]byte, n)
	if _, err := io.ReadFull(f, h); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	if _, _, err := parseHeader(h, size-8-int64(n)); err != nil {
		return nil, err
	}
	b := make([]byte, size)
	copy(b, lenBuf[:])
	copy(b[8:], h)
	if _, err := io.ReadFull(f, b[8+n:]); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	return Parse(b)
}
