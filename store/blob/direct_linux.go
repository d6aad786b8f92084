package blob

import (
	"os"
	"syscall"
)

// openDirect opens name for O_DIRECT writes, or returns nil where the file system refuses them.
func openDirect(name string) *os.File {
	f, err := os.OpenFile(name, os.O_WRONLY|syscall.O_DIRECT, 0)
	if err != nil {
		return nil
	}
	return f
}
