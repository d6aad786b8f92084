package fl

// simScaffold is a Simulation's SCAFFOLD state: the trainers' control variates, and the server's
// (SimScaffoldServer) or what each trainer needs to derive it (SimScaffoldClient).
type simScaffold struct {
	mode          string
	epochs, batch int
	serverLR      float64
	ci            []*File // per trainer (nil: zero)
	used          []*File // the c each trainer corrected with this round
	// SimScaffoldServer: the server's c and this round's sum of the trainers' c_i⁺ − c_i.
	c, sum *File
	// SimScaffoldClient: each published version's parent, and the versions each trainer
	// trained on (whose plaintext it holds).
	parent map[*File]*File
	held   []map[*File]bool
}

func newSimScaffold(s Simulation, model *File) *simScaffold {
	n := len(s.Shards)
	sc := &simScaffold{mode: s.Scaffold, epochs: s.Epochs, batch: s.Batch, serverLR: s.Optimizer.WithDefaults().LR,
		ci: make([]*File, n), used: make([]*File, n), c: ZeroControl(model), parent: map[*File]*File{}, held: make([]map[*File]bool, n)}
	for i := range sc.held {
		sc.held[i] = map[*File]bool{}
	}
	return sc
}

// lost is a failover: the coordinator aggregating the round has no server control variate.
func (sc *simScaffold) lost() {
	if sc.mode == SimScaffoldServer {
		sc.c = ZeroControl(sc.c)
	}
}

// correction is trainer i's c − c_i for training on base over n rows at rate lr (nil: no
// SCAFFOLD).
func (sc *simScaffold) correction(i int, base *File, n int, lr float64) (*File, error) {
	if sc.mode == "" {
		return nil, nil
	}
	c := sc.c
	if sc.mode == SimScaffoldClient {
		c = ZeroControl(base)
		if p := sc.parent[base]; p != nil && sc.held[i][p] {
			var err error
			if c, err = ScaffoldServerControl(p, base, sc.serverLR, LocalSteps(n, sc.epochs, sc.batch), lr); err != nil {
				return nil, err
			}
		}
	}
	sc.used[i] = c
	if sc.ci[i] == nil {
		sc.ci[i] = ZeroControl(base)
	}
	return ScaffoldCorrection(c, sc.ci[i])
}

// trained updates trainer i's c_i after it trained base into u over n rows at rate lr.
func (sc *simScaffold) trained(i int, base, u *File, n int, lr float64) error {
	if sc.mode == "" {
		return nil
	}
	next, err := ScaffoldUpdate(sc.ci[i], sc.used[i], base, u, LocalSteps(n, sc.epochs, sc.batch), lr)
	if err != nil {
		return err
	}
	if sc.mode == SimScaffoldServer {
		if sc.sum == nil {
			sc.sum = ZeroControl(base)
		}
		if sc.sum, err = combine(base, func(v []float64) float64 { return v[0] + v[1] - v[2] }, sc.sum, next, sc.ci[i]); err != nil {
			return err
		}
	}
	sc.ci[i] = next
	sc.held[i][base] = true
	return nil
}

// refused drops the round's server-side update (the coordinator refused the version).
func (sc *simScaffold) refused() { sc.sum = nil }

// published records next, aggregated on base: the server's c moves by the participants' mean
// change scaled by participants/trainers, i.e. by their sum over all trainers.
func (sc *simScaffold) published(base, next *File) error {
	sc.parent[next] = base
	if sc.mode == SimScaffoldServer && sc.sum != nil {
		n := float64(len(sc.ci))
		var err error
		if sc.c, err = combine(base, func(v []float64) float64 { return v[0] + v[1]/n }, sc.c, sc.sum); err != nil {
			return err
		}
	}
	sc.sum = nil
	return nil
}
