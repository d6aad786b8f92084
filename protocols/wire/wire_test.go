package wire

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

type msg struct {
	A uint64 `cbor:"1,keyasint"`
	B []byte `cbor:"2,keyasint,omitempty"`
}

func TestRoundTripAndNoOverRead(t *testing.T) {
	var buf bytes.Buffer
	for i := uint64(0); i < 3; i++ {
		if err := WriteFrame(&buf, msg{A: i, B: bytes.Repeat([]byte{byte(i)}, int(i*100))}); err != nil {
			t.Fatal(err)
		}
	}
	buf.WriteString("tail")
	for i := uint64(0); i < 3; i++ {
		var m msg
		if err := ReadFrame(&buf, 1024, &m); err != nil || m.A != i || len(m.B) != int(i*100) {
			t.Fatalf("ReadFrame #%d = %+v, %v", i, m, err)
		}
	}
	if rest, _ := io.ReadAll(&buf); string(rest) != "tail" {
		t.Errorf("bytes after the frames = %q, want %q (a reader consumed too much)", rest, "tail")
	}
}

func TestReadErrors(t *testing.T) {
	big := func() []byte { var b bytes.Buffer; WriteRaw(&b, make([]byte, 2000)); return b.Bytes() }()
	good := func() []byte { var b bytes.Buffer; WriteFrame(&b, msg{A: 1}); return b.Bytes() }()
	unknown := func() []byte {
		var b bytes.Buffer
		body, _ := Marshal(map[int]any{1: 1, 9: 2})
		WriteRaw(&b, body)
		return b.Bytes()
	}()
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, io.EOF},
		{"oversized", big, ErrFrameTooLarge},
		{"truncated body", good[:len(good)-1], ErrTruncated},
		{"truncated prefix", []byte{0x80}, ErrTruncated},
		{"non-minimal prefix", []byte{0x81, 0x00}, ErrMalformed},
		{"overlong prefix", bytes.Repeat([]byte{0xff}, 11), ErrMalformed},
		{"garbage body", []byte{2, 0xff, 0xff}, ErrMalformed},
		{"unknown field", unknown, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m msg
			if err := ReadFrame(bytes.NewReader(tt.in), 1024, &m); !errors.Is(err, tt.want) {
				t.Errorf("ReadFrame(%x) = %v, want %v", tt.in, err, tt.want)
			}
		})
	}
}

func FuzzReadFrame(f *testing.F) {
	var b bytes.Buffer
	WriteFrame(&b, msg{A: 7, B: []byte("x")})
	f.Add(b.Bytes())
	f.Add([]byte{0x80, 0x80, 0x01})
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, in []byte) {
		var m msg
		r := bytes.NewReader(in)
		if err := ReadFrame(r, 4096, &m); err != nil {
			return
		}
		var out bytes.Buffer
		if err := WriteFrame(&out, m); err != nil {
			t.Fatalf("WriteFrame(%+v) = %v", m, err)
		}
		var again msg
		if err := ReadFrame(&out, 4096, &again); err != nil || again.A != m.A || !bytes.Equal(again.B, m.B) {
			t.Fatalf("re-read %+v = %+v, %v", m, again, err)
		}
	})
}
