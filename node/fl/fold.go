package fl

import (
	"encoding/binary"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"
)

// littleEndian reports whether float32 tensor bytes can be viewed in place.
var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// tile is how many parameters a worker folds at a time: large enough to amortise scheduling,
// small enough to balance the cores when one of them is busy with something else.
const tile = 1 << 16

// foldF32 folds w × (little-endian float32 data) into s: s += w·data, or s = w·data when set
// (the first update, which need not read the zeroed sums). On little-endian machines it reads
// the tensor bytes in place as []float32 (zero-copy) and shares the tiles among all cores.
func foldF32(s []float32, data []byte, w float32, set bool) {
	if !littleEndian || len(data) == 0 || uintptr(unsafe.Pointer(&data[0]))%4 != 0 {
		for j := range s {
			x := math.Float32frombits(binary.LittleEndian.Uint32(data[4*j:]))
			if set {
				s[j] = w * x
			} else {
				s[j] += w * x
			}
		}
		return
	}
	v := unsafe.Slice((*float32)(unsafe.Pointer(&data[0])), len(s))
	kernel := addTile
	if set {
		kernel = setTile
	}
	parallel(len(s), func(lo, hi int) { kernel(s[lo:hi], v[lo:hi], w) })
}

// parallel calls f on the tiles of [0, n), spread over up to GOMAXPROCS goroutines (the caller
// being one) that each take the next tile until none is left.
func parallel(n int, f func(lo, hi int)) {
	workers := min(runtime.GOMAXPROCS(0), n/tile)
	if workers <= 1 {
		f(0, n)
		return
	}
	var next atomic.Int64
	work := func() {
		for {
			hi := int(next.Add(tile))
			if hi-tile >= n {
				return
			}
			f(hi-tile, min(hi, n))
		}
	}
	var wg sync.WaitGroup
	for range workers - 1 {
		wg.Go(work)
	}
	work()
	wg.Wait()
}

// addTile sets s += w·v, eight parameters a step (one bounds check each).
func addTile(s, v []float32, w float32) {
	v = v[:len(s)]
	j := 0
	for ; j+8 <= len(s); j += 8 {
		a, b := s[j:j+8:j+8], v[j:j+8:j+8]
		a[0] += w * b[0]
		a[1] += w * b[1]
		a[2] += w * b[2]
		a[3] += w * b[3]
		a[4] += w * b[4]
		a[5] += w * b[5]
		a[6] += w * b[6]
		a[7] += w * b[7]
	}
	for ; j < len(s); j++ {
		s[j] += w * v[j]
	}
}

// setTile sets s = w·v, eight parameters a step.
func setTile(s, v []float32, w float32) {
	v = v[:len(s)]
	j := 0
	for ; j+8 <= len(s); j += 8 {
		a, b := s[j:j+8:j+8], v[j:j+8:j+8]
		a[0] = w * b[0]
		a[1] = w * b[1]
		a[2] = w * b[2]
		a[3] = w * b[3]
		a[4] = w * b[4]
		a[5] = w * b[5]
		a[6] = w * b[6]
		a[7] = w * b[7]
	}
	for ; j < len(s); j++ {
		s[j] = w * v[j]
	}
}

// scaleF32 multiplies s by f in place, on all cores.
func scaleF32(s []float32, f float32) {
	parallel(len(s), func(lo, hi int) {
		for j := range s[lo:hi] {
			s[lo+j] *= f
		}
	})
}

// f32Bytes views float32s as their little-endian bytes (littleEndian machines only).
func f32Bytes(s []float32) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), 4*len(s))
}
