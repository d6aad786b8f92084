package keys

import "github.com/califusion/califusion/node/catalog"

// Refusals of catalog admission that a deposit answers with its own codes.
var (
	errUnknownParent = catalog.ErrUnknownParent
	errLineage       = catalog.ErrLineage
	errQuota         = catalog.ErrQuota
)
