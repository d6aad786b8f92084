// Package wire frames CaliFusion's libp2p messages: each frame is an unsigned-varint length
// followed by that many bytes of deterministic CBOR. Readers pass a per-protocol cap; a frame
// over it is refused before its body is read, and nothing beyond the frame is consumed, so the
// next reader on the stream sees the next frame intact.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/fxamacker/cbor/v2"
)

// Sentinel errors of ReadFrame.
var (
	ErrFrameTooLarge = errors.New("frame exceeds the protocol's size cap")
	ErrTruncated     = errors.New("frame truncated")
	ErrMalformed     = errors.New("malformed frame")
)

var (
	encMode = mustEnc()
	decMode = mustDec()
)

func mustEnc() cbor.EncMode {
	m, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	return m
}

func mustDec() cbor.DecMode {
	m, err := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		MaxNestedLevels:   8,
		MaxArrayElements:  1 << 17,
		MaxMapPairs:       256,
		IndefLength:       cbor.IndefLengthForbidden,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return m
}

// Marshal encodes v as deterministic CBOR.
func Marshal(v any) ([]byte, error) { return encMode.Marshal(v) }

// Unmarshal decodes deterministic CBOR strictly (unknown fields and duplicate keys are errors).
func Unmarshal(b []byte, v any) error {
	if err := decMode.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return nil
}

// WriteFrame encodes v and writes it as one frame.
func WriteFrame(w io.Writer, v any) error {
	body, err := encMode.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode frame: %w", err)
	}
	return WriteRaw(w, body)
}

// WriteRaw writes body as one frame.
func WriteRaw(w io.Writer, body []byte) error {
	var hdr [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(hdr[:], uint64(len(body)))
	buf := make([]byte, 0, n+len(body))
	buf = append(append(buf, hdr[:n]...), body...)
	_, err := w.Write(buf)
	return err
}

// ReadFrame reads one frame of at most max body bytes and decodes it into v.
func ReadFrame(r io.Reader, max int, v any) error {
	body, err := ReadRaw(r, max, nil)
	if err != nil {
		return err
	}
	return Unmarshal(body, v)
}

// ReadRaw reads one frame of at most max body bytes into buf (grown as needed) and returns it.
// A clean end of stream before the first byte is io.EOF.
func ReadRaw(r io.Reader, max int, buf []byte) ([]byte, error) {
	size, err := readUvarint(r)
	if err != nil {
		return nil, err
	}
	if size > uint64(max) {
		return nil, fmt.Errorf("%w: %d bytes, cap %d", ErrFrameTooLarge, size, max)
	}
	if uint64(cap(buf)) < size {
		buf = make([]byte, size)
	}
	buf = buf[:size]
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTruncated, err)
	}
	return buf, nil
}

// readUvarint reads a varint one byte at a time, so it never consumes bytes past it.
func readUvarint(r io.Reader) (uint64, error) {
	var x uint64
	var b [1]byte
	for i := 0; i < binary.MaxVarintLen64; i++ {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			if i == 0 && errors.Is(err, io.EOF) {
				return 0, io.EOF
			}
			return 0, fmt.Errorf("%w: length prefix: %v", ErrTruncated, err)
		}
		if i == binary.MaxVarintLen64-1 && b[0] > 1 {
			return 0, fmt.Errorf("%w: length prefix overflows", ErrMalformed)
		}
		x |= uint64(b[0]&0x7f) << (7 * i)
		if b[0] < 0x80 {
			if i > 0 && b[0] == 0 {
				return 0, fmt.Errorf("%w: length prefix not minimal", ErrMalformed)
			}
			return x, nil
		}
	}
	return 0, fmt.Errorf("%w: length prefix too long", ErrMalformed)
}
