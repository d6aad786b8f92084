package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/califusion/califusion/protocols/adminrpc"
)

// run runs the binary and returns its stdout, stderr and exit status.
func run(t *testing.T, args ...string) (stdout, stderr string, status int) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), bin, args...)
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		status = ee.ExitCode()
	default:
		t.Fatalf("califusiond %s: %v", strings.Join(args, " "), err)
	}
	return o.String(), e.String(), status
}

// jsonError decodes the {"error": {...}} object a failed verb prints with --json.
func jsonError(t *testing.T, stdout string) adminrpc.Error {
	t.Helper()
	var v struct {
		Error *adminrpc.Error `json:"error"`
	}
	if err := json.Unmarshal([]byte(stdout), &v); err != nil || v.Error == nil {
		t.Fatalf("stdout %q is not a JSON error object (%v)", stdout, err)
	}
	return *v.Error
}

// TestCLIExitStatus: each error class exits with its status from the README's table, with and
// without --json; with --json the error is a JSON object on stdout.
func TestCLIExitStatus(t *testing.T) {
	c := newCluster(t)
	n := c.NewNodes("x", 1, "publisher")[0]
	c.start(n)
	dd := n.Datadir

	// A stale rpc.addr: the address a crashed daemon left, where nothing listens now.
	stale := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	staleAddr := ln.Addr().String()
	ln.Close()
	writeFile(t, filepath.Join(stale, adminrpc.AddrFile), staleAddr+"\n")
	writeFile(t, filepath.Join(stale, adminrpc.TokenFile), "token\n")

	unknown := strings.Repeat("ab", 32)
	tests := []struct {
		name    string
		args    []string
		status  int
		code    int
		message string
	}{
		{"unknown command", []string{"--datadir", dd, "frobnicate"}, 2, adminrpc.CodeInvalidParams, `unknown command "frobnicate" for "califusiond"`},
		{"unknown subcommand", []string{"--datadir", dd, "model", "frobnicate"}, 2, adminrpc.CodeInvalidParams, `unknown command "frobnicate" for "califusiond model"`},
		{"suggestion", []string{"--datadir", dd, "model", "fecth"}, 2, adminrpc.CodeInvalidParams, "Did you mean this?\n\tfetch"},
		{"missing argument", []string{"--datadir", dd, "model", "show"}, 2, adminrpc.CodeInvalidParams, "accepts 1 arg(s), received 0"},
		{"invalid params", []string{"--datadir", dd, "model", "show", "nothex"}, 2, adminrpc.CodeInvalidParams, ""},
		{"invalid log level", []string{"--datadir", dd, "node", "log-level", "loud"}, 2, adminrpc.CodeInvalidParams, `unknown log level "loud"`},
		{"model not found", []string{"--datadir", dd, "model", "show", unknown}, 3, adminrpc.CodeNotFound, ""},
		{"job not found", []string{"--datadir", dd, "job", "cancel", "0123456789abcdef"}, 3, adminrpc.CodeNotFound, "is not known"},
		{"no daemon", []string{"--datadir", t.TempDir(), "node", "info"}, 8, adminrpc.CodeUnavailable, "no daemon is serving datadir"},
		{"stale rpc.addr", []string{"--datadir", stale, "node", "info"}, 8, adminrpc.CodeUnavailable,
			"no daemon answers at " + staleAddr + " (from " + filepath.Join(stale, adminrpc.AddrFile) + ", left by a daemon that did not stop cleanly?): start it with califusiond run"},
		{"export of an unknown model", []string{"--datadir", dd, "model", "export", unknown, filepath.Join(t.TempDir(), "missing", "x.bin")}, 3, adminrpc.CodeNotFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, status := run(t, tt.args...)
			if status != tt.status || !strings.Contains(errOut, tt.message) || out != "" {
				t.Errorf("califusiond %s = exit %d, stdout %q, stderr %q; want exit %d and %q on stderr", strings.Join(tt.args, " "), status, out, errOut, tt.status, tt.message)
			}
			out, errOut, status = run(t, append([]string{"--json"}, tt.args...)...)
			if status != tt.status || errOut != "" {
				t.Errorf("califusiond --json %s = exit %d, stderr %q; want exit %d and nothing on stderr", strings.Join(tt.args, " "), status, errOut, tt.status)
			}
			if e := jsonError(t, out); e.Code != tt.code || !strings.Contains(e.Message, tt.message) {
				t.Errorf("califusiond --json %s printed %+v, want code %d and %q", strings.Join(tt.args, " "), e, tt.code, tt.message)
			}
		})
	}

	// Export: a missing folder and an existing file, each said in one sentence.
	path, _ := writeRandom(t, 64<<10)
	pub, err := n.Client().ModelPublish(t.Context(), adminrpc.PublishParams{Path: path, Name: "m", Price: "0"})
	if err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing")
	if _, errOut, status := run(t, "--datadir", dd, "model", "export", pub.ModelID, filepath.Join(missing, "x.bin")); status != 2 || !strings.Contains(errOut, "folder "+missing+" does not exist") {
		t.Errorf("model export to a missing folder = exit %d, %q; want exit 2 and a sentence naming the folder", status, errOut)
	}
	if _, errOut, status := run(t, "--datadir", dd, "model", "export", pub.ModelID, path); status != 10 || !strings.Contains(errOut, "already exists") || !strings.Contains(errOut, "--force") {
		t.Errorf("model export over a file = exit %d, %q; want exit 10 and a sentence naming --force", status, errOut)
	}

	// version and --version name the protocols, as text and as JSON.
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out, _, status := run(t, args...)
		if status != 0 || !strings.Contains(out, "/califusion/chunks/1.0.0") || !strings.Contains(out, "califusion/models/") || !strings.Contains(out, "go1.") {
			t.Errorf("califusiond %s = exit %d:\n%s\nwant the protocol IDs, topics and Go version", args[0], status, out)
		}
	}
	var v struct {
		Version, GoVersion string
		Protocols          struct{ Streams, Topics []string }
	}
	if out, _, _ := run(t, "version", "--json"); json.Unmarshal([]byte(out), &v) != nil || !strings.Contains(strings.Join(v.Protocols.Streams, " "), "/califusion/catalog/") || len(v.Protocols.Topics) == 0 {
		t.Errorf("version --json = %s, want an object with the protocols", out)
	}

	// node log-level debug: the next call's debug line appears in the daemon's log.
	if strings.Contains(n.Logs(), "level=DEBUG") {
		t.Fatalf("the daemon logged at debug before node log-level debug:\n%s", n.Logs())
	}
	var lv adminrpc.LogLevelResult
	if err := json.Unmarshal([]byte(cli(t, false, "--datadir", dd, "--json", "node", "log-level", "debug")), &lv); err != nil || lv.Old != "info" || lv.New != "debug" {
		t.Errorf("node log-level debug = %+v (%v), want info → debug", lv, err)
	}
	cli(t, false, "--datadir", dd, "node", "info")
	waitFor(t, 10*time.Second, func() error {
		if !strings.Contains(n.Logs(), `level=DEBUG msg="rpc call" subsys=rpc method=node_info`) {
			return errf("no debug line for node_info in the log yet")
		}
		return nil
	})
}

// TestJobCancelKeepsChunks: a running fetch is cancelled (job cancel), ends cancelled with its
// verified chunks kept, is not resumed by a restart, and a new fetch resumes from those chunks.
func TestJobCancelKeepsChunks(t *testing.T) {
	c := newCluster(t)
	pub := c.NewNodes("pub", 1, "publisher")[0]
	f := c.NewNodes("f", 1, "trainer")[0]
	c.start(pub)
	c.start(f, "--bootstrap", pub.P2PAddr())
	// Small chunks make many requests: the fetch runs long after its first flush.
	path, _ := writeRandom(t, 32<<20)
	res, err := pub.Client().ModelPublish(t.Context(), adminrpc.PublishParams{Path: path, Name: "big", Price: "0", ChunkSize: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, func() error { _, err := f.Client().ModelGet(t.Context(), res.ModelID); return err })
	job, err := f.Client().ModelFetch(t.Context(), res.ModelID)
	if err != nil {
		t.Fatal(err)
	}
	// Once some chunks are durable, freeze the seeder so the fetch stays running.
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err := f.Client().JobStatus(t.Context(), job.JobID)
		if err != nil {
			t.Fatal(err)
		}
		if st.State != "running" {
			t.Fatalf("job %s is %s before it was cancelled: %+v", job.JobID, st.State, st)
		}
		if st.BytesDone > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s made no durable progress: %+v", job.JobID, st)
		}
		time.Sleep(time.Millisecond)
	}
	if err := syscall.Kill(pub.PID(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(pub.PID(), syscall.SIGCONT)

	var ls []adminrpc.JobInfo
	if err := json.Unmarshal([]byte(cli(t, false, "--datadir", f.Datadir, "--json", "job", "ls")), &ls); err != nil {
		t.Fatal(err)
	}
	if len(ls) != 1 || ls[0].JobID != job.JobID || ls[0].State != "running" || ls[0].Kind != "fetch" || ls[0].Subject != res.ModelID || ls[0].StartedAt == "" || ls[0].EndedAt != "" {
		t.Errorf("job ls = %+v, want the running fetch of %s", ls, res.ModelID)
	}
	var cancelled adminrpc.JobInfo
	if err := json.Unmarshal([]byte(cli(t, false, "--datadir", f.Datadir, "--json", "job", "cancel", job.JobID)), &cancelled); err != nil {
		t.Fatal(err)
	}
	if cancelled.State != "cancelled" || cancelled.BytesDone == 0 || cancelled.BytesDone >= cancelled.BytesTotal || cancelled.EndedAt == "" {
		t.Errorf("job cancel = %+v, want cancelled with part of the bytes kept", cancelled)
	}
	m, err := f.Client().ModelGet(t.Context(), res.ModelID)
	if err != nil {
		t.Fatal(err)
	}
	if m.LocalChunks == 0 || m.LocalChunks >= m.Chunks {
		t.Errorf("after cancel model_get = %d/%d local chunks, want some kept", m.LocalChunks, m.Chunks)
	}
	// Cancelling again is a conflict; job watch on a cancelled job says so.
	if _, errOut, status := run(t, "--datadir", f.Datadir, "job", "cancel", job.JobID); status != 10 || !strings.Contains(errOut, "already ended") {
		t.Errorf("job cancel again = exit %d, %q; want exit 10 and already ended", status, errOut)
	}
	if _, errOut, status := run(t, "--datadir", f.Datadir, "job", "watch", job.JobID); status != 10 || !strings.Contains(errOut, "was cancelled") {
		t.Errorf("job watch on a cancelled job = exit %d, %q; want exit 10 and was cancelled", status, errOut)
	}

	// A restart does not resume the cancelled job.
	if err := f.Stop(); err != nil {
		t.Fatal(err)
	}
	c.start(f, "--bootstrap", pub.P2PAddr())
	if st, err := f.Client().JobStatus(t.Context(), job.JobID); err != nil || st.State != "cancelled" {
		t.Errorf("job_status after restart = %+v, %v; want cancelled", st, err)
	}
	if strings.Count(f.Logs(), "fetch resumed") != 0 {
		t.Errorf("the restarted node resumed the cancelled job:\n%s", f.Logs())
	}

	// A new fetch (a new job) resumes from the kept chunks.
	syscall.Kill(pub.PID(), syscall.SIGCONT)
	out := cli(t, false, "--datadir", f.Datadir, "--json", "model", "fetch", res.ModelID)
	var st adminrpc.JobStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.State != "done" {
		t.Fatalf("model fetch after cancel = %s (%v), want done", out, err)
	}
	re := regexp.MustCompile(`msg="fetching model" (?:\S+ )*?model=` + res.ModelID + ` chunks=(\d+)`)
	all := re.FindAllStringSubmatch(f.Logs(), -1)
	if len(all) == 0 {
		t.Fatalf("no fetching model line in the log of %s", f.Name)
	}
	if left, _ := strconv.Atoi(all[len(all)-1][1]); left != int(m.Chunks-m.LocalChunks) {
		t.Errorf("the new fetch asked for %d chunks, want the %d the cancelled one had not fetched", left, m.Chunks-m.LocalChunks)
	}
	if ls, _ := f.Client().JobList(t.Context()); len(ls) != 2 || ls[0].State != "done" || ls[1].JobID != job.JobID || ls[1].State != "cancelled" {
		t.Errorf("job_list = %+v, want the done fetch, then the cancelled one", ls)
	}
}

// TestFetchInterrupted: SIGINT on `model fetch` leaves the job running in the daemon, names it
// and says how to cancel it, and exits 130.
func TestFetchInterrupted(t *testing.T) {
	c := newCluster(t)
	pub := c.NewNodes("pub", 1, "publisher")[0]
	f := c.NewNodes("f", 1, "trainer")[0]
	c.start(pub)
	c.start(f, "--bootstrap", pub.P2PAddr())
	path, _ := writeRandom(t, 1<<20)
	res, err := pub.Client().ModelPublish(t.Context(), adminrpc.PublishParams{Path: path, Name: "m", Price: "0", ChunkSize: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, func() error { _, err := f.Client().ModelGet(t.Context(), res.ModelID); return err })
	// A frozen seeder keeps the fetch running.
	if err := syscall.Kill(pub.PID(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(pub.PID(), syscall.SIGCONT)

	cmd := exec.CommandContext(t.Context(), bin, "--datadir", f.Datadir, "model", "fetch", res.ModelID)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var jobID string
	waitFor(t, 30*time.Second, func() error {
		ls, err := f.Client().JobList(t.Context())
		if err != nil || len(ls) != 1 || ls[0].State != "running" {
			return fmt.Errorf("job_list = %+v, %v; want one running job", ls, err)
		}
		jobID = ls[0].JobID
		return nil
	})
	cmd.Process.Signal(os.Interrupt)
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Errorf("model fetch after SIGINT = %v, want exit status 130", err)
	}
	if want := "califusiond --datadir " + f.Datadir + " job cancel " + jobID; !strings.Contains(stderr.String(), jobID) || !strings.Contains(stderr.String(), want) {
		t.Errorf("model fetch after SIGINT printed %q, want the job ID and %q", stderr.String(), want)
	}
	if st, err := f.Client().JobStatus(t.Context(), jobID); err != nil || st.State != "running" {
		t.Errorf("job %s after the CLI's SIGINT = %+v, %v; want still running in the daemon", jobID, st, err)
	}
}
