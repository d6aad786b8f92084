package fetch

import "errors"

// Refusals of the fetch service that callers tell apart.
var (
	// ErrIncomplete: the model's chunks are not all on this node.
	ErrIncomplete = errors.New("model is not complete on this node")
	// ErrNotUnlocked: this node does not hold the model's key.
	ErrNotUnlocked = errors.New("this node does not hold the model's key")
	// ErrExists: an export would replace an existing file without overwrite.
	ErrExists = errors.New("the file exists")
)
