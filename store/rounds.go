package store

// Namespaces for training rounds.
const (
	nsRound   = "round/"
	nsUpdate  = "update/"
	nsReport  = "report/"
	nsTrained = "trained/"
)

// RoundKey is the key of round id.
func RoundKey(id string) Key { return Key(nsRound + id) }

// RoundPrefix is the prefix of every round.
func RoundPrefix() Key { return Key(nsRound) }

// UpdateKey is the key of the update a trainer submitted to a round this node coordinates.
func UpdateKey(round, trainer string) Key { return Key(nsUpdate + round + "/" + trainer) }

// UpdatePrefix is the prefix of every update submitted to round.
func UpdatePrefix(round string) Key { return Key(nsUpdate + round + "/") }

// ReportKey is the key of the report of round.
func ReportKey(round string) Key { return Key(nsReport + round) }

// TrainedKey is the key of an update this node trained, by update ID.
func TrainedKey(id string) Key { return Key(nsTrained + id) }
