// Package audit is tollgate's tamper-evident audit log (docs/api.md, "Audit
// log"): a file of JSON lines, one [tollgate.AuditEvent] per line, each line
// carrying "prev", the hex SHA-256 of the line before it (its bytes without
// the newline). The first line of a chain has a prev of 64 zeros.
//
// [Log] implements [tollgate.Auditor]. [Log.Record] never waits on the disk:
// it puts the event on a bounded queue, and one writer goroutine batches the
// lines, writes each batch with one write call, flushes at least every 100 ms
// and fsyncs as [Options.Sync] says. When the queue is full the event is
// dropped and counted ([Log.Dropped]) instead of stalling a login or a
// handshake. Write and sync errors never stop the server: the Log keeps the
// last one, retries, and reports it through [Log.Ping], which fits the
// readiness check of GET /readyz.
//
// [Verify] reads a log and names the first line that breaks the chain. An
// edited, removed, inserted or reordered line shows as a [*BrokenError] at the
// first line whose prev no longer matches. What a hash chain without a key
// cannot show: that the last line was edited, or that lines were cut from the
// end, or that the whole file was rewritten with recomputed hashes. Keep a
// copy elsewhere ([Options.Copy], e.g. stdout to a log collector) or record
// the last line's hash outside the host when that matters.
//
// A torn last line (the file does not end in a newline, as a crash in the
// middle of a write leaves it) is cut off by [Open] and the chain continues
// from the last complete line; see [Open] for why that hides nothing.
//
// The package owns the file format, the chain and the writer goroutine. It
// does not decide which events are recorded or where the file lives: callers
// (auth, httpapi, hub) record events, and cmd/tollgate opens
// <data-dir>/audit.log and runs `tollgate audit verify`. Events hold no
// secret by construction (the credential kind, never its value); the Log
// bounds every string field to [MaxFieldBytes] because user names, Origins
// and reasons may come from clients, and encoding/json escapes them, so no
// input can start a new line.
//
// One Log must own its file: two processes appending to the same file break
// the chain.
package audit
