package announce

import (
	"bytes"
	"errors"
	"github.com/califusion/califusion/protocols/wire"
	"testing"
)

// verifyPrefix is a stand-in manifest check: a "manifest" is valid when it starts with "ok".
func verifyPrefix(m []byte) error {
	if !bytes.HasPrefix(m, []byte("ok")) {
		return errors.New("bad signature")
	}
	return nil
}

func TestModelAnnounce(t *testing.T) {
	good, err := NewModelAnnounce([]byte("ok manifest")).Encode()
	if err != nil {
		t.Fatal(err)
	}
	if a, err := DecodeModelAnnounce(good, verifyPrefix); err != nil || string(a.Manifest) != "ok manifest" {
		t.Fatalf("DecodeModelAnnounce(good) = %+v, %v", a, err)
	}
	misHashed := NewModelAnnounce([]byte("ok manifest"))
	misHashed.Manifest = []byte("ok other")
	mh, _ := misHashed.Encode()
	unsigned, _ := NewModelAnnounce([]byte("no signature")).Encode()
	short, _ := wire.Marshal(ModelAnnounce{ModelID: []byte{1}, Manifest: []byte("ok")})
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"mis-hashed", mh, ErrMisHashed},
		{"bad manifest", unsigned, ErrBadManifest},
		{"short id", short, ErrMalformed},
		{"garbage", []byte("\xff\xff"), ErrMalformed},
		{"oversized", make([]byte, MaxModelAnnounceSize+1), ErrTooLarge},
		{"oversized manifest", func() []byte {
			b, _ := wire.Marshal(NewModelAnnounce(append([]byte("ok"), make([]byte, MaxManifestSize)...)))
			return b
		}(), ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := DecodeModelAnnounce(tt.in, verifyPrefix); !errors.Is(err, tt.want) {
				t.Errorf("DecodeModelAnnounce(%s) = %v, want %v", tt.name, err, tt.want)
			}
		})
	}
}

func FuzzDecodeModelAnnounce(f *testing.F) {
	good, _ := NewModelAnnounce([]byte("ok manifest")).Encode()
	f.Add(good)
	f.Add([]byte{0xa2, 0x01, 0x40, 0x02, 0x40})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := DecodeModelAnnounce(b, verifyPrefix)
		if err != nil {
			return
		}
		if !bytes.HasPrefix(a.Manifest, []byte("ok")) {
			t.Fatalf("accepted a manifest that fails verify: %q", a.Manifest)
		}
	})
}
