package metrics

import _ "embed"

// Dashboard is a Grafana dashboard (JSON, importable: Dashboards → New → Import) over the
// node's metrics; `califusiond metrics dashboard` prints it. It asks for a Prometheus data
// source and filters on the scrape's instance label.
//
//go:embed grafana/califusion.json
var Dashboard []byte
