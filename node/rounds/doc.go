// Package rounds runs federated-learning training rounds. Every node follows the round
// announcements on the rounds topic. A coordinator runs its own rounds: Open starts one on a
// model whose lineage names it, the updates server (updates/submit/2, updates/round/1, updates/report/1 on kex)
// judges each submission's signed header (decide), verifies the spooled body (accept) and keeps
// it, and on quorum or at the deadline the round aggregates by its rule, publishes the aggregate
// as the next version of the lineage, anchors the commitments and writes the report. A trainer
// runs its hook on a round's model (Train) and submits the update to the round's coordinator
// (Submit), and asks that coordinator for its own report on a round it submitted to (Report,
// over updates/report/1, report.go); Standings tells round_list which rounds it can join.
//
// Lifecycle: New loads nothing and starts no goroutine; a Service that is not started still opens,
// closes and reports rounds and judges submissions handed to it (without a rounds topic it
// announces nothing). Start joins the rounds topic and, on a coordinator, registers the updates
// server on kex, resumes its unfinished rounds after a restart and repeats its open rounds for
// late joiners. Close stops all of it, in reverse, and waits for running aggregations.
//
// Stored records: store.RoundRecord (converted to and from the gossip type announce.Round here,
// records.go), the coordinator's updateRecord per submission, store.ReportRecord per aggregated
// round and the trainer's trainedUpdate per trained update.
package rounds
