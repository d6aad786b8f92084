package fl

import (
	"encoding/binary"
	"math"
	"runtime"
	"sync"
	"unsafe"
)

// littleEndian reports whether float32 tensor bytes can be viewed in place.
var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// tile is the unit of splitting work over the cores: tensors under two tiles are folded on the
// calling goroutine, where a goroutine would cost more than it saves.
const tile = 1 << 16

// foldF32 folds w × (little-endian float32 data) into s: s += w·data, or s = w·data when set
// (the first update, which need not read the zeroed sums). On little-endian machines it reads
// the tensor bytes in place as []float32 (zero-copy) and splits the work over all cores.
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

// parallel calls f on [0, n) split into one run of whole tiles per core (GOMAXPROCS), each on
// its own goroutine, or on all of it at once when n is under two tiles.
func parallel(n int, f func(lo, hi int)) {
	workers := runtime.GOMAXPROCS(0)
	if n < 2*tile || workers == 1 {
		f(0, n)
		return
	}
	var wg sync.WaitGroup
	per := (n/workers + tile - 1) / tile * tile
	for lo := 0; lo < n; lo += per {
		hi := min(lo+per, n)
		wg.Go(func() { f(lo, hi) })
	}
	wg.Wait()
}

// addTile sets s += w·v, eight parameters a step (one bounds check a step).
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
