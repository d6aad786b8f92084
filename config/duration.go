package config

import (
	"fmt"
	"time"
)

// Duration is a time.Duration written in TOML as a string such as "30s" or "1m30s".
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("invalid duration %q: write it like \"30s\", \"5m\" or \"1h30m\"", b)
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration in Go's string form.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.Duration.String()), nil }
