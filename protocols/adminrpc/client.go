package adminrpc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
)

// File names in the datadir through which a client finds its daemon.
const (
	AddrFile  = "rpc.addr"
	TokenFile = "rpc.token"
)

// Client calls a daemon's admin API.
type Client struct {
	url   string
	token string
	http  *http.Client
	next  atomic.Int64
	// addrFile is the rpc.addr the address was read from (Dial), named when nothing answers.
	addrFile string
}

// NewClient returns a client of the daemon listening on addr (host:port) with token.
func NewClient(addr, token string) *Client {
	return &Client{url: "http://" + addr + "/", token: token, http: &http.Client{}}
}

// Dial reads rpc.addr and rpc.token from datadir and returns a client of that daemon.
func Dial(datadir string) (*Client, error) {
	addr, err := os.ReadFile(filepath.Join(datadir, AddrFile))
	if os.IsNotExist(err) {
		return nil, Errorf(CodeUnavailable, "no daemon is serving datadir %s (no %s): start it with `califusiond run --datadir %s`", datadir, AddrFile, datadir)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", AddrFile, err)
	}
	token, err := os.ReadFile(filepath.Join(datadir, TokenFile))
	if err != nil {
		return nil, fmt.Errorf("read %s (run `califusiond init` first?): %w", TokenFile, err)
	}
	c := NewClient(strings.TrimSpace(string(addr)), strings.TrimSpace(string(token)))
	c.addrFile = filepath.Join(datadir, AddrFile)
	return c, nil
}

// Addr returns the host:port the client talks to.
func (c *Client) Addr() string { return strings.TrimSuffix(strings.TrimPrefix(c.url, "http://"), "/") }

// Call invokes method with params and decodes the result into result (which may be nil). An
// application error is returned as *Error.
func (c *Client) Call(ctx context.Context, method string, params, result any) error {
	if params == nil {
		params = struct{}{}
	}
	p, err := json.Marshal(params)
	if err != nil {
		return fmt.Errorf("encode %s params: %w", method, err)
	}
	body, err := json.Marshal(request{JSONRPC: "2.0", Method: method, Params: p, ID: json.RawMessage(fmt.Sprint(c.next.Add(1)))})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if errors.Is(err, syscall.ECONNREFUSED) {
		// Nothing listens there: the daemon is gone (a crash leaves its rpc.addr behind).
		e := &Error{Code: CodeUnavailable, Message: fmt.Sprintf("no daemon answers at %s: start it with califusiond run", c.Addr()), Data: err.Error()}
		if c.addrFile != "" {
			e.Message = fmt.Sprintf("no daemon answers at %s (from %s, left by a daemon that did not stop cleanly?): start it with califusiond run", c.Addr(), c.addrFile)
		}
		return e
	}
	if err != nil {
		return fmt.Errorf("call %s on %s: %w", method, c.Addr(), err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read %s reply: %w", method, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("call %s: HTTP %d: %s", method, resp.StatusCode, strings.TrimSpace(string(raw)))
	}
	var out struct {
		Result json.RawMessage `json:"result"`
		Error  *Error          `json:"error"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return fmt.Errorf("decode %s reply: %w", method, err)
	}
	if out.Error != nil {
		return out.Error
	}
	if result == nil {
		return nil
	}
	if err := json.Unmarshal(out.Result, result); err != nil {
		return fmt.Errorf("decode %s result: %w", method, err)
	}
	return nil
}

// NodeInfo calls node_info.
func (c *Client) NodeInfo(ctx context.Context) (NodeInfo, error) {
	var r NodeInfo
	return r, c.Call(ctx, "node_info", nil, &r)
}

// NodePeers calls node_peers.
func (c *Client) NodePeers(ctx context.Context) ([]Peer, error) {
	var r []Peer
	return r, c.Call(ctx, "node_peers", nil, &r)
}

// NodeConnect calls node_connect.
func (c *Client) NodeConnect(ctx context.Context, addr string) (ConnectResult, error) {
	var r ConnectResult
	return r, c.Call(ctx, "node_connect", ConnectParams{Addr: addr}, &r)
}

// NodeDirectory calls node_directory.
func (c *Client) NodeDirectory(ctx context.Context) ([]DirectoryEntry, error) {
	var r []DirectoryEntry
	return r, c.Call(ctx, "node_directory", nil, &r)
}

// NodeRouting calls node_routing.
func (c *Client) NodeRouting(ctx context.Context) (RoutingResult, error) {
	var r RoutingResult
	return r, c.Call(ctx, "node_routing", nil, &r)
}

// ModelPublish calls model_publish.
func (c *Client) ModelPublish(ctx context.Context, p PublishParams) (PublishResult, error) {
	var r PublishResult
	return r, c.Call(ctx, "model_publish", p, &r)
}

// ModelList calls model_list.
func (c *Client) ModelList(ctx context.Context) ([]ModelSummary, error) {
	var r []ModelSummary
	return r, c.Call(ctx, "model_list", nil, &r)
}

// ModelGet calls model_get.
func (c *Client) ModelGet(ctx context.Context, modelID string) (ModelDetail, error) {
	var r ModelDetail
	return r, c.Call(ctx, "model_get", ModelIDParams{ModelID: modelID}, &r)
}

// ModelFetch calls model_fetch.
func (c *Client) ModelFetch(ctx context.Context, modelID string) (JobIDResult, error) {
	var r JobIDResult
	return r, c.Call(ctx, "model_fetch", ModelIDParams{ModelID: modelID}, &r)
}

// JobStatus calls job_status.
func (c *Client) JobStatus(ctx context.Context, jobID string) (JobStatus, error) {
	var r JobStatus
	return r, c.Call(ctx, "job_status", JobIDParams{JobID: jobID}, &r)
}

// ModelExport calls model_export; an existing path is refused (ModelExportWith can overwrite).
func (c *Client) ModelExport(ctx context.Context, modelID, path string) (ExportResult, error) {
	return c.ModelExportWith(ctx, ExportParams{ModelID: modelID, Path: path})
}

// ModelExportWith calls model_export with every param; Overwrite replaces an existing file.
func (c *Client) ModelExportWith(ctx context.Context, p ExportParams) (ExportResult, error) {
	var r ExportResult
	return r, c.Call(ctx, "model_export", p, &r)
}

// AnchorVerify calls anchor_verify.
func (c *Client) AnchorVerify(ctx context.Context, modelID string) (AnchorState, error) {
	var r AnchorState
	return r, c.Call(ctx, "anchor_verify", ModelIDParams{ModelID: modelID}, &r)
}

// LedgerBalance calls ledger_balance.
func (c *Client) LedgerBalance(ctx context.Context) (BalanceResult, error) {
	var r BalanceResult
	return r, c.Call(ctx, "ledger_balance", nil, &r)
}

// LedgerTransfer calls ledger_transfer.
func (c *Client) LedgerTransfer(ctx context.Context, p TransferParams) (TransferResult, error) {
	var r TransferResult
	return r, c.Call(ctx, "ledger_transfer", p, &r)
}

// ModelPay calls model_pay: it pays, or returns this node's earlier payment for the model's
// lineage (AlreadyPaid). ModelPayWith takes the other params.
func (c *Client) ModelPay(ctx context.Context, modelID string) (PayResult, error) {
	return c.ModelPayWith(ctx, PayParams{ModelID: modelID})
}

// ModelPayWith calls model_pay with every param; Again pays even if this node already paid for
// the model's lineage.
func (c *Client) ModelPayWith(ctx context.Context, p PayParams) (PayResult, error) {
	var r PayResult
	return r, c.Call(ctx, "model_pay", p, &r)
}

// ModelUnlock calls model_unlock.
func (c *Client) ModelUnlock(ctx context.Context, p UnlockParams) (UnlockResult, error) {
	var r UnlockResult
	return r, c.Call(ctx, "model_unlock", p, &r)
}

// RoundOpen calls round_open.
func (c *Client) RoundOpen(ctx context.Context, p RoundOpenParams) (RoundIDParams, error) {
	var r RoundIDParams
	return r, c.Call(ctx, "round_open", p, &r)
}

// RoundList calls round_list.
func (c *Client) RoundList(ctx context.Context, modelID string) ([]RoundInfo, error) {
	var r []RoundInfo
	return r, c.Call(ctx, "round_list", RoundListParams{ModelID: modelID}, &r)
}

// TrainRun calls train_run.
func (c *Client) TrainRun(ctx context.Context, p TrainRunParams) (TrainRunResult, error) {
	var r TrainRunResult
	return r, c.Call(ctx, "train_run", p, &r)
}

// UpdateSubmit calls update_submit.
func (c *Client) UpdateSubmit(ctx context.Context, roundID, updateID string) (UpdateSubmitResult, error) {
	var r UpdateSubmitResult
	return r, c.Call(ctx, "update_submit", UpdateSubmitParams{RoundID: roundID, UpdateID: updateID}, &r)
}

// RoundClose calls round_close.
func (c *Client) RoundClose(ctx context.Context, roundID string) (RoundCloseResult, error) {
	var r RoundCloseResult
	return r, c.Call(ctx, "round_close", RoundIDParams{RoundID: roundID}, &r)
}

// RoundReport calls round_report.
func (c *Client) RoundReport(ctx context.Context, roundID string) (RoundReport, error) {
	var r RoundReport
	return r, c.Call(ctx, "round_report", RoundIDParams{RoundID: roundID}, &r)
}
