// Package fsutil writes and reads the node's private files: secrets kept at mode 0600, files
// replaced atomically (temp file, sync, rename), and paths checked to lie outside the datadir.
package fsutil

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ReadSecret reads a secret file, tightening its mode to 0600 if it was looser.
func ReadSecret(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read secret: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(path, 0o600); err != nil {
			return nil, fmt.Errorf("%s is readable by others and could not be restricted: %w", path, err)
		}
	}
	return os.ReadFile(path)
}

// WriteFileAtomic writes data to path via a temp file and rename, so readers never see a partial
// file and a crash leaves the old one.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// WritePrivate writes a file atomically with mode 0600, creating its folder with mode 0700.
func WritePrivate(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return WriteFileAtomic(path, data, 0o600)
}

// ErrInside refuses a path that is the datadir or inside it.
var ErrInside = errors.New("the path is inside the node's datadir")

// Outside resolves path's folder through its symlinks and refuses a result that is root or
// inside it (resolved the same way) with ErrInside. The file name itself is not followed: a file
// written there by temp file and rename replaces a symlink rather than writing where it points.
func Outside(root, path string) (string, error) {
	dir, err := filepath.EvalSymlinks(filepath.Dir(path))
	if err != nil {
		return "", fmt.Errorf("folder of %s: %w", path, err)
	}
	resolved, err := filepath.EvalSymlinks(root)
	if err != nil {
		return "", fmt.Errorf("resolve datadir: %w", err)
	}
	target := filepath.Join(dir, filepath.Base(path))
	for _, p := range []string{dir, target} {
		if rel, err := filepath.Rel(resolved, p); err == nil && (rel == "." || rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))) {
			return "", fmt.Errorf("%w: %s resolves to %s", ErrInside, path, target)
		}
	}
	return target, nil
}
