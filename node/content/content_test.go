package content

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

const testPayee = "aaaaa-aa"

// packed is a model packaged in memory for tests.
type packed struct {
	plain  []byte
	key    Key
	m      *Manifest
	signed []byte
	id     ModelID
	chunks [][]byte
	leaves [][32]byte
}

func pack(t testing.TB, plain []byte, chunkSize uint64, workers int) *packed {
	t.Helper()
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := NewKey()
	salt := make([]byte, SaltSize)
	rand.Read(salt)
	var chunks [][]byte
	p, err := Package(context.Background(), bytes.NewReader(plain), uint64(len(plain)), chunkSize, key, salt, workers, func(i uint64, ct []byte) error {
		if i != uint64(len(chunks)) {
			return fmt.Errorf("emit(%d) out of order, want %d", i, len(chunks))
		}
		chunks = append(chunks, bytes.Clone(ct))
		return nil
	})
	if err != nil {
		t.Fatalf("Package(%d bytes, chunk %d, workers %d) = %v", len(plain), chunkSize, workers, err)
	}
	kc := key.Commitment()
	m := &Manifest{Name: "m", Size: uint64(len(plain)), ChunkSize: chunkSize, Chunks: p.Chunks, Root: p.Root[:],
		KeyCommitment: kc[:], Salt: salt, Price: "100", Payee: Account{Owner: testPayee}, CreatedAt: time.Now().UnixMilli()}
	signed, id, err := Sign(m, priv)
	if err != nil {
		t.Fatalf("Sign = %v", err)
	}
	return &packed{plain: plain, key: key, m: m, signed: signed, id: id, chunks: chunks, leaves: p.Leaves}
}

func (p *packed) read(i uint64, _ []byte) ([]byte, error) { return p.chunks[i], nil }

func TestRoundTripSizes(t *testing.T) {
	const cs = MinChunkSize
	sizes := []int{0, 1, cs - 1, cs, cs + 1, 5*cs + 17, 3 << 20}
	for _, size := range sizes {
		for _, workers := range []int{1, 3} {
			t.Run(fmt.Sprintf("size=%d/workers=%d", size, workers), func(t *testing.T) {
				plain := make([]byte, size)
				rand.Read(plain)
				p := pack(t, plain, cs, workers)
				if want := ChunkCount(uint64(size), cs); uint64(len(p.chunks)) != want {
					t.Fatalf("emitted %d chunks, want %d", len(p.chunks), want)
				}
				m, id, err := Open(p.signed)
				if err != nil || id != p.id {
					t.Fatalf("Open(signed) = %v, id %x, want %x", err, id, p.id)
				}
				for i, ct := range p.chunks {
					if Leaf(ct) != p.leaves[i] {
						t.Fatalf("leaf %d does not hash its chunk", i)
					}
				}
				if err := CheckLeaves(p.leaves, m.Chunks, m.Root); err != nil {
					t.Fatalf("CheckLeaves = %v", err)
				}
				var out bytes.Buffer
				if err := Decrypt(&out, m, p.key, p.read); err != nil {
					t.Fatalf("Decrypt = %v", err)
				}
				if !bytes.Equal(out.Bytes(), plain) {
					t.Fatalf("Decrypt returned %d bytes that differ from the %d-byte input", out.Len(), len(plain))
				}
			})
		}
	}
}

func TestParallelMatchesSerialLeaves(t *testing.T) {
	plain := make([]byte, 20*MinChunkSize+5)
	rand.Read(plain)
	key, _ := NewKey()
	salt := make([]byte, SaltSize)
	var roots [][32]byte
	for _, w := range []int{1, 2, 4} {
		p, err := Package(context.Background(), bytes.NewReader(plain), uint64(len(plain)), MinChunkSize, key, salt, w, func(uint64, []byte) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		roots = append(roots, p.Root)
	}
	if roots[0] != roots[1] || roots[0] != roots[2] {
		t.Errorf("roots by worker count differ: %x", roots)
	}
}

func TestPackageInputSizeMismatch(t *testing.T) {
	key, _ := NewKey()
	salt := make([]byte, SaltSize)
	nop := func(uint64, []byte) error { return nil }
	for _, w := range []int{1, 2} {
		if _, err := Package(context.Background(), bytes.NewReader(make([]byte, 10)), 11, MinChunkSize, key, salt, w, nop); err == nil {
			t.Errorf("Package(short input, workers %d) = nil error", w)
		}
		if _, err := Package(context.Background(), bytes.NewReader(make([]byte, 12)), 11, MinChunkSize, key, salt, w, nop); err == nil {
			t.Errorf("Package(long input, workers %d) = nil error", w)
		}
	}
	boom := errors.New("disk full")
	if _, err := Package(context.Background(), bytes.NewReader(make([]byte, 10*MinChunkSize)), 10*MinChunkSize, MinChunkSize, key, salt, 2, func(uint64, []byte) error { return boom }); !errors.Is(err, boom) {
		t.Errorf("Package with failing emit = %v, want %v", err, boom)
	}
}

func TestTamperDetected(t *testing.T) {
	plain := make([]byte, 3*MinChunkSize+9)
	rand.Read(plain)
	p := pack(t, plain, MinChunkSize, 1)
	other := pack(t, plain, MinChunkSize, 1)
	m, _, _ := Open(p.signed)

	t.Run("ciphertext bit", func(t *testing.T) {
		bad := bytes.Clone(p.chunks[1])
		bad[5] ^= 1
		if Leaf(bad) == p.leaves[1] {
			t.Errorf("a flipped bit keeps the leaf hash")
		}
		err := Decrypt(&bytes.Buffer{}, m, p.key, func(i uint64, _ []byte) ([]byte, error) {
			if i == 1 {
				return bad, nil
			}
			return p.chunks[i], nil
		})
		if !errors.Is(err, ErrDecrypt) {
			t.Errorf("Decrypt(tampered) = %v, want ErrDecrypt", err)
		}
	})
	t.Run("swapped chunks", func(t *testing.T) {
		err := Decrypt(&bytes.Buffer{}, m, p.key, func(i uint64, _ []byte) ([]byte, error) { return p.chunks[(i+1)%m.Chunks], nil })
		if !errors.Is(err, ErrDecrypt) {
			t.Errorf("Decrypt(chunks at wrong index) = %v, want ErrDecrypt", err)
		}
	})
	t.Run("chunk of another model", func(t *testing.T) {
		err := Decrypt(&bytes.Buffer{}, m, p.key, func(i uint64, _ []byte) ([]byte, error) { return other.chunks[i], nil })
		if !errors.Is(err, ErrDecrypt) {
			t.Errorf("Decrypt(other model's chunks) = %v, want ErrDecrypt", err)
		}
	})
	t.Run("wrong key", func(t *testing.T) {
		if err := Decrypt(&bytes.Buffer{}, m, other.key, p.read); !errors.Is(err, ErrKeyCommitment) {
			t.Errorf("Decrypt(wrong key) = %v, want ErrKeyCommitment", err)
		}
	})
	t.Run("leaf list", func(t *testing.T) {
		leaves := append([][32]byte(nil), p.leaves...)
		leaves[2][0] ^= 1
		if err := CheckLeaves(leaves, m.Chunks, m.Root); !errors.Is(err, ErrLeaves) {
			t.Errorf("CheckLeaves(tampered) = %v, want ErrLeaves", err)
		}
		if err := CheckLeaves(p.leaves[:2], m.Chunks, m.Root); !errors.Is(err, ErrLeaves) {
			t.Errorf("CheckLeaves(truncated) = %v, want ErrLeaves", err)
		}
	})
	t.Run("signature byte", func(t *testing.T) {
		bad := bytes.Clone(p.signed)
		bad[len(bad)-1] ^= 1
		if _, _, err := Open(bad); !errors.Is(err, ErrSignature) {
			t.Errorf("Open(bad signature) = %v, want ErrSignature", err)
		}
	})
	t.Run("manifest field", func(t *testing.T) {
		var s signed
		if err := unmarshalStrict(p.signed, &s); err != nil {
			t.Fatal(err)
		}
		var mm Manifest
		unmarshalStrict(s.Body, &mm)
		mm.Price = "1"
		body, _ := marshal(&mm)
		forged, _ := marshal(signed{Body: body, Signature: s.Signature})
		if _, _, err := Open(forged); !errors.Is(err, ErrSignature) {
			t.Errorf("Open(price changed) = %v, want ErrSignature", err)
		}
	})
}

func TestManifestConsistency(t *testing.T) {
	priv, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	base := func() *Manifest {
		return &Manifest{Name: "m", Size: 10000, ChunkSize: MinChunkSize, Chunks: 3, Root: make([]byte, 32), KeyCommitment: make([]byte, 32),
			Salt: make([]byte, SaltSize), Price: "5", Payee: Account{Owner: testPayee}, CreatedAt: 1}
	}
	tests := []struct {
		name   string
		mutate func(*Manifest)
	}{
		{"chunk count disagrees", func(m *Manifest) { m.Chunks = 4 }},
		{"size disagrees", func(m *Manifest) { m.Size = 1 }},
		{"chunk size too big", func(m *Manifest) { m.ChunkSize = MaxChunkSize + 1 }},
		{"negative price", func(m *Manifest) { m.Price = "-1" }},
		{"price not canonical", func(m *Manifest) { m.Price = "007" }},
		{"bad payee", func(m *Manifest) { m.Payee.Owner = "nobody" }},
		{"short root", func(m *Manifest) { m.Root = m.Root[:31] }},
		{"parent without lineage", func(m *Manifest) { m.Parent = make([]byte, 32) }},
		{"empty name", func(m *Manifest) { m.Name = "" }},
		{"size beyond MaxModelSize", func(m *Manifest) {
			m.Size, m.ChunkSize = MaxModelSize+1, MaxChunkSize
			m.Chunks = ChunkCount(m.Size, m.ChunkSize)
		}},
		{"size 2^64-1", func(m *Manifest) { m.Size = ^uint64(0); m.Chunks = ChunkCount(m.Size, m.ChunkSize) }},
		{"chunks beyond MaxChunks", func(m *Manifest) {
			m.Size = (MaxChunks + 1) * MinChunkSize
			m.Chunks = ChunkCount(m.Size, m.ChunkSize)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := base()
			tt.mutate(m)
			if _, _, err := Sign(m, priv); !errors.Is(err, ErrManifest) {
				t.Errorf("Sign(%s) = %v, want ErrManifest", tt.name, err)
			}
		})
	}
	if _, _, err := Sign(base(), priv); err != nil {
		t.Errorf("Sign(base) = %v, want nil", err)
	}
	// The largest model at the smallest chunk size that cuts it into MaxChunks chunks is valid.
	big := base()
	big.Size, big.ChunkSize = MaxModelSize, MinChunkSizeFor(MaxModelSize)
	big.Chunks = ChunkCount(big.Size, big.ChunkSize)
	if big.Chunks != MaxChunks {
		t.Fatalf("ChunkCount(MaxModelSize, MinChunkSizeFor(MaxModelSize)) = %d, want %d", big.Chunks, MaxChunks)
	}
	if _, _, err := Sign(big, priv); err != nil {
		t.Errorf("Sign(1 TiB in %d-byte chunks) = %v, want nil", big.ChunkSize, err)
	}
}

// TestOpenRefusesHugeModel checks that a correctly signed manifest claiming a model beyond
// MaxModelSize does not open (Sign refuses it too, so the body is signed by hand).
func TestOpenRefusesHugeModel(t *testing.T) {
	priv, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	pid, _ := peer.IDFromPrivateKey(priv)
	m := &Manifest{Version: ManifestVersion, Name: "huge", Size: 1 << 63, ChunkSize: MinChunkSize, Root: make([]byte, 32),
		KeyCommitment: make([]byte, 32), Salt: make([]byte, SaltSize), Price: "0", Payee: Account{Owner: testPayee},
		Publisher: []byte(pid), CreatedAt: 1}
	m.Chunks = ChunkCount(m.Size, m.ChunkSize)
	body, err := marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := priv.Sign(append([]byte(signContext), body...))
	if err != nil {
		t.Fatal(err)
	}
	b, err := marshal(signed{Body: body, Signature: sig})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Open(b); !errors.Is(err, ErrManifest) || !strings.Contains(err.Error(), "largest model") {
		t.Errorf("Open(2^63-byte model) = %v, want ErrManifest naming the largest model", err)
	}
}

func TestMerkleKnownShapes(t *testing.T) {
	l := func(b byte) [32]byte { return Leaf([]byte{b}) }
	// RFC 6962: MTH of 3 leaves = H(1 ‖ H(1 ‖ l0 ‖ l1) ‖ l2).
	n01 := node(l(0), l(1))
	if got, want := Root([][32]byte{l(0), l(1), l(2)}), node(n01, l(2)); got != want {
		t.Errorf("Root(3 leaves) = %x, want %x", got, want)
	}
	if got, want := Root([][32]byte{l(0), l(1), l(2), l(3), l(4)}), node(node(n01, node(l(2), l(3))), l(4)); got != want {
		t.Errorf("Root(5 leaves) = %x, want %x", got, want)
	}
}

func FuzzOpen(f *testing.F) {
	p := pack(f, []byte("hello"), MinChunkSize, 1)
	f.Add(p.signed)
	f.Add([]byte{0xa2, 0x01, 0x40, 0x02, 0x40})
	// A root naming two coordinators (field 16).
	priv, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	_, c1, _ := crypto.GenerateEd25519Key(rand.Reader)
	_, c2, _ := crypto.GenerateEd25519Key(rand.Reader)
	withCoords := *p.m
	for _, k := range []crypto.PubKey{c1, c2} {
		id, _ := peer.IDFromPublicKey(k)
		withCoords.Coordinators = append(withCoords.Coordinators, []byte(id))
	}
	if signed, _, err := Sign(&withCoords, priv); err == nil {
		f.Add(signed)
	}
	// The same root escrowed 2-of-2 (fields 17 and 18).
	withShares := withCoords
	withShares.Threshold = 2
	withShares.ShareCommitments = [][]byte{make([]byte, 32), make([]byte, 32)}
	if signed, _, err := Sign(&withShares, priv); err == nil {
		f.Add(signed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, id, err := Open(b)
		if err != nil {
			return
		}
		if len(m.Coordinators) > MaxCoordinators || (len(m.Coordinators) > 0 && !m.IsRoot()) || len(m.CoordinatorIDs()) != len(m.Coordinators) {
			t.Fatalf("Open accepted a bad coordinator list %x", m.Coordinators)
		}
		if m.Chunks != ChunkCount(m.Size, m.ChunkSize) {
			t.Fatalf("Open accepted inconsistent manifest %+v", m)
		}
		if m.IsThreshold() && (len(m.ShareCommitments) != len(m.ShareHolderIDs()) || int(m.Threshold) > len(m.ShareHolderIDs())) {
			t.Fatalf("Open accepted a threshold manifest with %d commitments for %d holders, t = %d", len(m.ShareCommitments), len(m.ShareHolderIDs()), m.Threshold)
		}
		if id != p.id && bytes.Equal(b, p.signed) {
			t.Fatalf("ModelID changed")
		}
	})
}
