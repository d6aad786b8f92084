package jobs

// Active counts the queued or running jobs by kind (metrics.JobSource).
func (m *Manager) Active() map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]int{}
	for _, s := range m.live {
		if s.State == Queued || s.State == Running {
			out[s.Kind]++
		}
	}
	return out
}
