//go:build !linux

package nodeproc

import "syscall"

// procAttr starts a daemon in its own process group, so a stop reaches its children too.
func procAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
