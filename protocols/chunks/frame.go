package chunks

import (
	"bytes"
	"encoding/binary"
	"io"

	"github.com/califusion/califusion/protocols/wire"
)

// A ChunkResponse that carries data is a megabyte of ciphertext behind a few bytes of CBOR. The
// frames are the same deterministic CBOR that wire.WriteFrame writes, but built around the data
// rather than by copying it: the server sends its read buffer as it is, and the client's decoded
// Data is a view into the frame it read.

// cborHead appends a CBOR head of major type major (0: unsigned, 2: byte string) with value v in
// its shortest form, as deterministic encoding requires.
func cborHead(dst []byte, major byte, v uint64) []byte {
	m := major << 5
	switch {
	case v < 24:
		return append(dst, m|byte(v))
	case v <= 0xff:
		return append(dst, m|24, byte(v))
	case v <= 0xffff:
		return binary.BigEndian.AppendUint16(append(dst, m|25), uint16(v))
	case v <= 0xffffffff:
		return binary.BigEndian.AppendUint32(append(dst, m|26), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(dst, m|27), v)
}

// chunkHead appends the encoding of ChunkResponse{Index: i, Data: <n bytes>} up to the data:
// a two-entry map, key 1 → i, key 2 → a byte string header of length n (n > 0).
func chunkHead(dst []byte, i uint64, n int) []byte {
	dst = append(dst, 0xa2, 0x01)
	dst = cborHead(dst, 0, i)
	dst = append(dst, 0x02)
	return cborHead(dst, 2, uint64(n))
}

// writeChunk writes one ChunkResponse frame carrying data, without copying data.
func writeChunk(w io.Writer, i uint64, data []byte) error {
	if len(data) == 0 {
		return wire.WriteFrame(w, &ChunkResponse{Index: i})
	}
	var buf [32]byte
	head := chunkHead(buf[10:10], i, len(data))
	frame := binary.AppendUvarint(buf[:0], uint64(len(head)+len(data)))
	frame = append(frame, head...)
	if _, err := w.Write(frame); err != nil {
		return err
	}
	_, err := w.Write(data)
	return err
}

// parseChunk decodes a ChunkResponse frame body. When the body is a chunk with data in the
// canonical form, Data is a view into body; anything else goes through the strict decoder.
func parseChunk(body []byte) (ChunkResponse, error) {
	if r, ok := parseChunkFast(body); ok {
		return r, nil
	}
	var r ChunkResponse
	err := wire.Unmarshal(body, &r)
	return r, err
}

func parseChunkFast(body []byte) (ChunkResponse, bool) {
	if len(body) < 4 || body[0] != 0xa2 || body[1] != 0x01 {
		return ChunkResponse{}, false
	}
	i, rest, ok := readHead(body[2:], 0)
	if !ok || len(rest) < 2 || rest[0] != 0x02 {
		return ChunkResponse{}, false
	}
	n, data, ok := readHead(rest[1:], 2)
	if !ok || n == 0 || n != uint64(len(data)) {
		return ChunkResponse{}, false
	}
	// Only the shortest encodings are canonical: re-encode the head and compare.
	var buf [32]byte
	if !bytes.Equal(chunkHead(buf[:0], i, int(n)), body[:len(body)-len(data)]) {
		return ChunkResponse{}, false
	}
	return ChunkResponse{Index: i, Data: data}, true
}

// readHead reads a CBOR head of the given major type and returns its value and what follows.
func readHead(b []byte, major byte) (uint64, []byte, bool) {
	if len(b) == 0 || b[0]>>5 != major {
		return 0, nil, false
	}
	info, b := b[0]&0x1f, b[1:]
	var size int
	switch {
	case info < 24:
		return uint64(info), b, true
	case info == 24:
		size = 1
	case info == 25:
		size = 2
	case info == 26:
		size = 4
	case info == 27:
		size = 8
	default:
		return 0, nil, false
	}
	if len(b) < size {
		return 0, nil, false
	}
	var v uint64
	for _, c := range b[:size] {
		v = v<<8 | uint64(c)
	}
	return v, b[size:], true
}
