package catalog

// Count is the number of models in the catalog (metrics.CatalogSource), read from the index.
func (s *Service) Count() int {
	s.index.mu.Lock()
	defer s.index.mu.Unlock()
	return len(s.index.entries)
}
