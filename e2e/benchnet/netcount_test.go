package main

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/califusion/califusion/node/fl"
)

// ssSample is `ss -tinpH state established` output (shortened info lines): the coordinator
// (pid 100, libp2p port 4001) with an inbound connection from a trainer, an outbound one to a
// trainer listening on 5001, its admin API connection, and another process's socket.
const ssSample = `0      0      127.0.0.1:4001 127.0.0.1:40000 users:(("califusiond",pid=100,fd=20))
	 bbr wscale:10,10 rto:208 bytes_sent:14536 bytes_acked:14400 bytes_received:11345 segs_out:140
0      0      127.0.0.1:38000 127.0.0.1:5001 users:(("califusiond",pid=100,fd=21))
	 bbr bytes_sent:1 bytes_acked:1 bytes_received:700 segs_out:2
0      0      127.0.0.1:8645 127.0.0.1:41812 users:(("califusiond",pid=100,fd=13))
	 bbr bytes_sent:2377 bytes_acked:2378 bytes_received:7979
0      0      127.0.0.1:4001 127.0.0.1:40001 users:(("califusiond",pid=1000,fd=19))
	 bbr bytes_received:12953
`

// TestParseSS: only the coordinator's libp2p sockets count, each with its bytes_received.
func TestParseSS(t *testing.T) {
	c := &p2pInbound{pid: 100, local: "4001", peers: map[string]bool{"5001": true}}
	got := c.parse(ssSample)
	want := map[string]int64{"127.0.0.1:4001 127.0.0.1:40000": 11345, "127.0.0.1:38000 127.0.0.1:5001": 700}
	if len(got) != len(want) {
		t.Fatalf("parse = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("socket %s: %d bytes, want %d", k, got[k], v)
		}
	}
}

// TestProcCPU: this process's CPU time is read and grows with work.
func TestProcCPU(t *testing.T) {
	before, err := procCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	x := 0
	for i := 0; i < 300_000_000; i++ {
		x += i % 7
	}
	after, err := procCPU(os.Getpid())
	if err != nil || after <= before || x == 0 {
		t.Fatalf("procCPU %g then %g (%v), want it to grow", before, after, err)
	}
}

// TestPerturbHook: the hook writes the model with every coordinate moved by at most
// perturbStep, some moved, and the sample count the hook contract wants.
func TestPerturbHook(t *testing.T) {
	raw, err := largeModel(1)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "model.safetensors"), filepath.Join(dir, "update.safetensors")
	if err := os.WriteFile(in, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := runPerturb([]string{in, out}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	u, err := fl.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if u.Metadata["samples"] != strconv.Itoa(perturbSamples) {
		t.Errorf("samples = %q, want %d", u.Metadata["samples"], perturbSamples)
	}
	coords, moved := 0, 0
	for _, tn := range u.Tensors {
		for j := range tn.Elements() {
			v := tn.At(j) // the model is all zeros
			if v > perturbStep || v < -perturbStep {
				t.Fatalf("%s[%d] = %g, beyond ±%g", tn.Name, j, v, perturbStep)
			}
			if v != 0 {
				moved++
			}
			coords++
		}
	}
	if coords != 1<<20/4 || moved < coords/2 {
		t.Errorf("%d coordinates, %d moved; want %d, most moved", coords, moved, 1<<20/4)
	}
}
