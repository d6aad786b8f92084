package keys

import (
	"errors"

	"github.com/califusion/califusion/node/catalog"
	"github.com/califusion/califusion/protocols/apierr"
)

// Refusals of catalog admission that a deposit answers with its own codes.
var (
	errUnknownParent = catalog.ErrUnknownParent
	errLineage       = catalog.ErrLineage
	errQuota         = catalog.ErrQuota
)

// connectCause is the cause of a failed Ledger.Client: the provider returns an *apierr.Error
// whose Data is the connection error, and the keys service words its own refusals around it (as
// the old code did around the raw error).
func connectCause(err error) string {
	var ae *apierr.Error
	if errors.As(err, &ae) {
		if s, ok := ae.Data.(string); ok && s != "" {
			return s
		}
	}
	return err.Error()
}
