package announce

import (
	"fmt"
	"math"
	"regexp"
	"sort"

	"github.com/califusion/califusion/protocols/wire"
)

// Bounds of a round's free-form Config (field 30): a coordinator chooses it, so a trainer checks
// it before anything reads it.
const (
	MaxConfigKeys   = 32      // entries
	MaxConfigString = 256     // bytes of a string value
	MaxConfigBytes  = 4 << 10 // bytes of the whole map in its CBOR form
)

// ConfigKeyPattern is what a round config key looks like.
var ConfigKeyPattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// CheckConfig validates a round's free-form config: at most MaxConfigKeys keys matching
// ConfigKeyPattern, each value a finite number, a string of at most MaxConfigString bytes or a
// boolean, and at most MaxConfigBytes encoded. The error names the first offending key (in key
// order) and says what is allowed.
func CheckConfig(c map[string]any) error {
	if len(c) == 0 {
		return nil
	}
	if len(c) > MaxConfigKeys {
		return fmt.Errorf("config has %d keys: at most %d are allowed", len(c), MaxConfigKeys)
	}
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !ConfigKeyPattern.MatchString(k) {
			return fmt.Errorf("config key %.80q must be a lowercase letter then up to 63 lowercase letters, digits or underscores", k)
		}
		switch v := c[k].(type) {
		case bool, int, int64, uint64:
		case float64:
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("config.%s: a number must be finite", k)
			}
		case string:
			if len(v) > MaxConfigString {
				return fmt.Errorf("config.%s: a string value is %d bytes, at most %d are allowed", k, len(v), MaxConfigString)
			}
		default:
			return fmt.Errorf("config.%s: a value must be a number, a string or a boolean, not %s", k, configKind(v))
		}
	}
	b, err := wire.Marshal(c)
	if err != nil {
		return fmt.Errorf("config: %v", err)
	}
	if len(b) > MaxConfigBytes {
		return fmt.Errorf("config is %d bytes encoded: at most %d are allowed", len(b), MaxConfigBytes)
	}
	return nil
}

// configKind names a refused value's kind without echoing it.
func configKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case []any:
		return "a list"
	case map[any]any, map[string]any:
		return "a table"
	case []byte:
		return "bytes"
	default:
		return fmt.Sprintf("%T", v)
	}
}
