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

// tile is how many parameters one worker folds at a time: large enough to amortise scheduling,
// small enough to keep both cores busy on small tensors.
const tile = 1 << 16

// addF32 adds w × (little-endian float32 data) into s. On little-endian machines it reads the
// tensor bytes in place as []float32 (zero-copy) and splits the work into tiles over all cores.
func addF32(s []float32, data []byte, w float32) {
	if !littleEndian || len(data) == 0 || uintptr(unsafe.Pointer(&data[0]))%4 != 0 {
		for j := range s {
			s[j] += w * math.Float32frombits(binary.LittleEndian.Uint32(data[4*j:]))
		}
		return
	}
	v := unsafe.Slice((*float32)(unsafe.Pointer(&data[0])), len(s))
	workers := runtime.GOMAXPROCS(0)
	if len(s) < 2*tile || workers == 1 {
		foldTile(s, v, w)
		return
	}
	var wg sync.WaitGroup
	per := (len(s)/workers + tile - 1) / tile * tile
	for lo := 0; lo < len(s); lo += per {
		hi := min(lo+per, len(s))
		wg.Add(1)
		go func() {
			defer wg.Done()
			foldTile(s[lo:hi], v[lo:hi], w)
		}()
	}
	wg.Wait()
}

func foldTile(s []float32, v []float32, w float32) {
	v = v[:len(s)]
	j := 0
	for ; j+4 <= len(s); j += 4 { // unrolled: fewer bounds checks and loop branches
		a, b := s[j:j+4:j+4], v[j:j+4:j+4]
		a[0] += w * b[0]
		a[1] += w * b[1]
		a[2] += w * b[2]
		a[3] += w * b[3]
	}
	for ; j < len(s); j++ {
		s[j] += w * v[j]
	}
}

// scaleF32 multiplies s by f in place.
func scaleF32(s []float32, f float32) {
	for j := range s {
		s[j] *= f
	}
}

// f32Bytes views float32s as their little-endian bytes (littleEndian machines only).
func f32Bytes(s []float32) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), 4*len(s))
}
