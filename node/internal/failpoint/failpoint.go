// Package failpoint ends the process at named points for crash-consistency tests.
package failpoint

import "os"

// Crash ends the process at once (exit 137, as SIGKILL) when CALIFUSION_CRASH_AT names point;
// it is inert otherwise.
func Crash(point string) {
	if os.Getenv("CALIFUSION_CRASH_AT") == point {
		os.Exit(137)
	}
}
