package content

import (
	"crypto/sha256"

	"github.com/califusion/califusion/protocols/wire"
)

func marshal(v any) ([]byte, error)         { return wire.Marshal(v) }
func unmarshalStrict(b []byte, v any) error { return wire.Unmarshal(b, v) }

func node(l, r [32]byte) [32]byte {
	return sha256.Sum256(append(append([]byte{1}, l[:]...), r[:]...))
}
