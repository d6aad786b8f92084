package devnet

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"os"
	"strconv"
	"strings"

	"github.com/califusion/califusion/node/fl"
)

// digitsCSV is the digits dataset (data/README.md has its source and license), embedded so the
// devnet runs from the binary alone.
//
//go:embed data/digits.csv.gz
var digitsCSV []byte

// DigitsScale divides the digits' pixel counts (0..16) into [0, 1].
const DigitsScale = 16

// LoadDigits returns the embedded digits dataset with features scaled to [0, 1].
func LoadDigits() (*fl.Dataset, error) {
	gz, err := gzip.NewReader(bytes.NewReader(digitsCSV))
	if err != nil {
		return nil, err
	}
	defer gz.Close()
	return fl.ReadCSV(gz, "digits.csv.gz", DigitsScale)
}

// WriteCSV writes a dataset as CSV rows: its (scaled) features, then the label.
func WriteCSV(path string, d *fl.Dataset) error {
	var b strings.Builder
	for i, row := range d.X {
		for _, v := range row {
			b.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(d.Y[i]))
		b.WriteByte('\n')
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}
