package fl

import (
	"encoding/binary"
	"math"
)

// addF32 adds w × (little-endian float32 data) into s, without converting the whole tensor first.
func addF32(s []float64, data []byte, w float64) {
	for j := range s {
		s[j] += w * float64(math.Float32frombits(binary.LittleEndian.Uint32(data[4*j:])))
	}
}
