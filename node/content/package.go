package content

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Packed is what packaging a file produced.
type Packed struct {
	Leaves [][32]byte
	Root   [32]byte
	Chunks uint64
}

// EmitFunc receives sealed chunks in index order. ct is reused once EmitFunc returns.
type EmitFunc func(i uint64, ct []byte) error

// Package reads exactly size bytes of plaintext from r, seals it in chunkSize chunks under key and
// salt, and passes each ciphertext chunk to emit in index order. With workers > 1 sealing and
// hashing run in parallel; memory stays O(chunkSize × workers).
func Package(ctx context.Context, r io.Reader, size, chunkSize uint64, key Key, salt []byte, workers int, emit EmitFunc) (*Packed, error) {
	if chunkSize < MinChunkSize || chunkSize > MaxChunkSize {
		return nil, fmt.Errorf("chunk size %d is outside %d..%d", chunkSize, MinChunkSize, MaxChunkSize)
	}
	count := ChunkCount(size, chunkSize)
	sealer, err := NewSealer(key, salt, count)
	if err != nil {
		return nil, err
	}
	p := &Packed{Leaves: make([][32]byte, count), Chunks: count}
	if workers <= 1 {
		err = packSerial(ctx, r, size, chunkSize, sealer, p, emit)
	} else {
		err = packParallel(ctx, r, size, chunkSize, sealer, workers, p, emit)
	}
	if err != nil {
		return nil, err
	}
	// The reader must end exactly at size: more bytes mean the file changed while we read it.
	var probe [1]byte
	if n, _ := io.ReadFull(r, probe[:]); n != 0 {
		return nil, fmt.Errorf("input is longer than its declared size %d (did the file change?)", size)
	}
	p.Root = Root(p.Leaves)
	return p, nil
}

func readChunk(r io.Reader, buf []byte) error {
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("input ended before its declared size (did the file change?): %w", io.ErrUnexpectedEOF)
		}
		return fmt.Errorf("read input: %w", err)
	}
	return nil
}

func packSerial(ctx context.Context, r io.Reader, size, chunkSize uint64, s *Sealer, p *Packed, emit EmitFunc) error {
	plain := make([]byte, chunkSize)
	ct := make([]byte, 0, chunkSize+Overhead)
	h := sha256.New()
	for i := uint64(0); i < p.Chunks; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := chunkSize
		if i+1 == p.Chunks {
			n = size - i*chunkSize
		}
		if err := readChunk(r, plain[:n]); err != nil {
			return err
		}
		ct = s.Seal(ct[:0], i, plain[:n])
		p.Leaves[i] = leafWith(h, ct)
		if err := emit(i, ct); err != nil {
			return err
		}
	}
	return nil
}

type packJob struct {
	i     uint64
	plain []byte
	ct    []byte
	done  chan struct{}
}

func packParallel(ctx context.Context, r io.Reader, size, chunkSize uint64, s *Sealer, workers int, p *Packed, emit EmitFunc) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Buffers for at most two chunks per worker, and no larger than the file: a small model
	// costs small buffers.
	slots := int(min(uint64(2*workers), max(p.Chunks, 1)))
	bufSize := min(chunkSize, max(size, 1))
	free := make(chan *packJob, slots)
	for range slots {
		free <- &packJob{plain: make([]byte, bufSize), ct: make([]byte, 0, bufSize+Overhead), done: make(chan struct{}, 1)}
	}
	work := make(chan *packJob, slots)
	order := make(chan *packJob, slots)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := sha256.New()
			for j := range work {
				j.ct = s.Seal(j.ct[:0], j.i, j.plain)
				p.Leaves[j.i] = leafWith(h, j.ct)
				j.done <- struct{}{}
			}
		}()
	}
	readErr := make(chan error, 1)
	go func() {
		defer close(order)
		defer close(work)
		for i := uint64(0); i < p.Chunks; i++ {
			var j *packJob
			select {
			case <-ctx.Done():
				readErr <- ctx.Err()
				return
			case j = <-free:
			}
			n := chunkSize
			if i+1 == p.Chunks {
				n = size - i*chunkSize
			}
			j.i, j.plain = i, j.plain[:n]
			if err := readChunk(r, j.plain); err != nil {
				readErr <- err
				return
			}
			work <- j
			order <- j
		}
		readErr <- nil
	}()
	var emitErr error
	for j := range order {
		<-j.done
		if emitErr == nil {
			if emitErr = emit(j.i, j.ct); emitErr != nil {
				cancel()
			}
		}
		j.plain = j.plain[:cap(j.plain)]
		select {
		case free <- j:
		default:
		}
	}
	wg.Wait()
	if err := <-readErr; err != nil && emitErr == nil {
		return err
	}
	return emitErr
}

// Decrypt writes the plaintext of a model to w. read returns ciphertext chunk i (it may reuse
// buf); every chunk is authenticated before its plaintext is written.
func Decrypt(w io.Writer, m *Manifest, key Key, read func(i uint64, buf []byte) ([]byte, error)) error {
	if err := key.CheckCommitment(m.KeyCommitment); err != nil {
		return err
	}
	s, err := NewSealer(key, m.Salt, m.Chunks)
	if err != nil {
		return err
	}
	var ctBuf, plain []byte
	for i := uint64(0); i < m.Chunks; i++ {
		ct, err := read(i, ctBuf)
		if err != nil {
			return fmt.Errorf("read chunk %d: %w", i, err)
		}
		ctBuf = ct
		plain, err = s.Open(plain[:0], i, ct)
		if err != nil {
			return fmt.Errorf("chunk %d: %w", i, err)
		}
		if uint64(len(plain)) != m.PlainLen(i) {
			return fmt.Errorf("chunk %d: %w: %d plaintext bytes, want %d", i, ErrDecrypt, len(plain), m.PlainLen(i))
		}
		if _, err := w.Write(plain); err != nil {
			return fmt.Errorf("write plaintext: %w", err)
		}
	}
	return nil
}
