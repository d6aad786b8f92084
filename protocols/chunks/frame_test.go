package chunks

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/califusion/califusion/protocols/wire"
)

// TestChunkFrameIsCanonicalCBOR: the hand-built frames are byte for byte what wire.WriteFrame
// writes, and parse back to the same response with Data a view into the frame.
func TestChunkFrameIsCanonicalCBOR(t *testing.T) {
	for _, i := range []uint64{0, 23, 24, 255, 256, 65535, 65536, 1 << 32, 1<<64 - 1} {
		for _, n := range []int{1, 23, 24, 255, 256, 65535, 65536, 1<<20 + 16} {
			data := bytes.Repeat([]byte{byte(n)}, n)
			var got, want bytes.Buffer
			if err := writeChunk(&got, i, data); err != nil {
				t.Fatal(err)
			}
			wire.WriteFrame(&want, &ChunkResponse{Index: i, Data: data})
			if !bytes.Equal(got.Bytes(), want.Bytes()) {
				t.Fatalf("index %d, %d bytes: frame differs from wire.WriteFrame", i, n)
			}
			body, err := wire.ReadRaw(&got, MaxChunkFrame+64, nil)
			if err != nil {
				t.Fatal(err)
			}
			r, err := parseChunk(body)
			if err != nil || r.Index != i || !bytes.Equal(r.Data, data) {
				t.Fatalf("parseChunk(index %d, %d bytes) = %d, %d bytes, %v", i, n, r.Index, len(r.Data), err)
			}
			if &r.Data[0] != &body[len(body)-n] {
				t.Errorf("index %d, %d bytes: Data was copied, want a view into the frame", i, n)
			}
		}
	}
	var missing bytes.Buffer
	writeChunk(&missing, 7, nil)
	body, _ := wire.ReadRaw(&missing, 1<<10, nil)
	if r, err := parseChunk(body); err != nil || r.Index != 7 || r.Data != nil {
		t.Errorf("empty chunk frame = %+v, %v", r, err)
	}
}

// FuzzParseChunk: whatever the bytes, the fast path never accepts a body the strict decoder
// would read differently (or refuse).
func FuzzParseChunk(f *testing.F) {
	good, _ := wire.Marshal(&ChunkResponse{Index: 300, Data: []byte("ciphertext")})
	f.Add(good)
	nonMinimal := append([]byte{0xa2, 0x01, 0x18, 0x05, 0x02, 0x42}, 'h', 'i') // index 5 in two bytes
	f.Add(nonMinimal)
	missing, _ := wire.Marshal(&ChunkResponse{Index: 1, Missing: true})
	f.Add(missing)
	f.Fuzz(func(t *testing.T, b []byte) {
		fast, ok := parseChunkFast(b)
		if !ok {
			return
		}
		var strict ChunkResponse
		if err := wire.Unmarshal(b, &strict); err != nil {
			t.Fatalf("fast path accepted %x, which the strict decoder refuses: %v", b, err)
		}
		if !reflect.DeepEqual(fast, strict) {
			t.Fatalf("fast path read %+v, strict %+v", fast, strict)
		}
	})
}
