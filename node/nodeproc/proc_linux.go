package nodeproc

import "syscall"

// procAttr starts a daemon in its own process group (so a stop reaches its children too) and
// has the kernel send it SIGTERM if the process that started it dies first (a test binary
// killed by a timeout or a broken pipe leaves no daemons behind).
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
