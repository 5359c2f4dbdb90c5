package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/tollgate-ws/tollgate"
)

// file is what the writer needs of an *os.File opened with O_APPEND, so that
// tests can make it fail.
type file interface {
	io.Writer
	Sync() error
	Truncate(size int64) error
	Close() error
}

// line is one line of the log: the event's fields, then prev.
type line struct {
	tollgate.AuditEvent
	Prev string `json:"prev"`
}

// writer is the state of the writer goroutine; only run and what it calls
// touch it.
type writer struct {
	f          file
	copy       io.Writer
	policy     SyncPolicy
	syncPeriod time.Duration
	retryEvery time.Duration

	size  int64  // bytes of the file that hold complete, written lines
	prev  string // hash of the last line encoded (written or in batch)
	batch bytes.Buffer
	enc   *json.Encoder
	lines int // lines in batch

	failing   bool      // the last write failed; batch is kept and retried
	writeErr  error     // the last write error, kept after recovery for Close
	truncate  bool      // a failed write may have left part of batch after size
	nextRetry time.Time // when failing: the next attempt
	dirty     bool      // written since the last successful fsync
	lastSync  time.Time
	copyErr   error

	loggedDrops uint64
	lastDropLog time.Time
}

func newWriter(f file, size int64, prev string, opts Options) *writer {
	w := &writer{
		f:          f,
		copy:       opts.Copy,
		policy:     opts.Sync,
		syncPeriod: opts.SyncPeriod,
		retryEvery: retryEvery,
		size:       size,
		prev:       prev,
		lastSync:   time.Now(),
	}
	w.enc = json.NewEncoder(&w.batch) // escapes <, >, & and U+2028/9 too
	return w
}

// run is the writer goroutine: it takes events off the queue until Close.
func (l *Log) run() {
	defer close(l.done)
	w := l.w
	tick := time.NewTicker(flushEvery)
	defer tick.Stop()
	for {
		var in <-chan tollgate.AuditEvent
		if !w.failing {
			in = l.queue // while failing, events wait in the queue (and overflow it)
		}
		select {
		case e := <-in:
			l.add(e)
			if len(l.queue) == 0 || w.batch.Len() >= maxBatchBytes {
				l.flush()
			}
		case now := <-tick.C:
			if !w.failing || !now.Before(w.nextRetry) {
				l.flush()
			}
			if w.policy == SyncInterval && w.dirty && now.Sub(w.lastSync) >= w.syncPeriod {
				l.sync()
			}
			l.logDrops(now, false)
		case <-l.stop:
			l.closeErr = l.finish()
			return
		}
	}
}

// add encodes e as the next line of the chain into the batch.
func (l *Log) add(e tollgate.AuditEvent) {
	w := l.w
	start := w.batch.Len()
	if err := w.enc.Encode(line{AuditEvent: e, Prev: w.prev}); err != nil {
		// sanitize makes this unreachable (NaN, a year past 9999).
		w.batch.Truncate(start)
		l.dropped.Add(1)
		l.log.Error("audit event not encodable; dropped", "event", string(e.Event), "error", err)
		return
	}
	b := w.batch.Bytes()[start : w.batch.Len()-1] // without the newline
	if len(b) > MaxLineBytes {
		// sanitize makes this unreachable too: Verify would reject the line.
		w.batch.Truncate(start)
		l.dropped.Add(1)
		l.log.Error("audit event too long; dropped", "event", string(e.Event), "bytes", len(b))
		return
	}
	sum := sha256.Sum256(b)
	w.prev = hex.EncodeToString(sum[:])
	w.lines++
}

// flush writes the batch with one write call, so that a crash between two
// calls never splits a line. After a failed write it first truncates what
// part of the batch may have reached the file, so that the retry does not
// leave a torn line in the middle of the log.
func (l *Log) flush() {
	w := l.w
	if w.batch.Len() == 0 {
		return
	}
	l.busySince.Store(time.Now().UnixNano())
	defer l.busySince.Store(0)
	if w.truncate {
		if err := w.f.Truncate(w.size); err != nil {
			l.writeFailed(fmt.Errorf("cut partial write: %w", err))
			return
		}
		w.truncate = false
	}
	n, err := w.f.Write(w.batch.Bytes())
	if err != nil {
		if n > 0 {
			w.truncate = true
		}
		l.writeFailed(err)
		return
	}
	w.size += int64(n)
	w.dirty = true
	if w.copy != nil {
		l.writeCopy(w.batch.Bytes())
	}
	w.batch.Reset()
	w.lines = 0
	w.failing = false
	l.setErr(false, nil)
	if w.policy == SyncAlways {
		l.sync()
	}
}

func (l *Log) writeFailed(err error) {
	w := l.w
	w.failing = true
	w.writeErr = err
	w.nextRetry = time.Now().Add(w.retryEvery)
	l.setErr(false, err)
}

func (l *Log) writeCopy(b []byte) {
	w := l.w
	_, err := w.copy.Write(b)
	switch {
	case err != nil && w.copyErr == nil:
		l.log.Warn("audit log copy failed", "error", err)
	case err == nil && w.copyErr != nil:
		l.log.Info("audit log copy works again")
	}
	w.copyErr = err
}

// sync fsyncs the file when something was written since the last fsync.
func (l *Log) sync() {
	w := l.w
	if !w.dirty {
		return
	}
	l.busySince.Store(time.Now().UnixNano())
	err := w.f.Sync()
	l.busySince.Store(0)
	w.lastSync = time.Now()
	if err != nil {
		l.setErr(true, err) // dirty stays: the next period tries again
		return
	}
	w.dirty = false
	l.setErr(true, nil)
}

// logDrops warns, at most every dropLogEvery unless final, that events were
// dropped.
func (l *Log) logDrops(now time.Time, final bool) {
	w := l.w
	d := l.dropped.Load()
	if d == w.loggedDrops || !final && now.Sub(w.lastDropLog) < dropLogEvery {
		return
	}
	l.log.Warn("audit events dropped", "path", l.path, "dropped", d-w.loggedDrops, "dropped_total", d)
	w.loggedDrops, w.lastDropLog = d, now
}

// finish runs at Close: no Record can queue any more. It writes the batch
// and the queue (one more attempt when the file is failing), fsyncs and
// closes the file.
func (l *Log) finish() error {
	w := l.w
	l.flush()
	var lost uint64
	for drained := false; !drained; {
		select {
		case e := <-l.queue:
			if w.failing {
				lost++
				continue
			}
			l.add(e)
			if w.batch.Len() >= maxBatchBytes {
				l.flush()
			}
		default:
			drained = true
		}
	}
	l.flush()
	if w.failing {
		lost += uint64(w.lines)
	}
	var errs []error
	if lost > 0 {
		l.dropped.Add(lost)
		errs = append(errs, fmt.Errorf("audit: %d events not written: %w", lost, w.writeErr))
	}
	if w.dirty {
		if err := w.f.Sync(); err != nil {
			errs = append(errs, fmt.Errorf("audit: %w", err))
		}
	}
	if err := w.f.Close(); err != nil {
		errs = append(errs, fmt.Errorf("audit: %w", err))
	}
	l.logDrops(time.Now(), true)
	return errors.Join(errs...)
}
