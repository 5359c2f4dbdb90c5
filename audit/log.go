package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tollgate-ws/tollgate"
)

// SyncPolicy says when a [Log] fsyncs its file.
type SyncPolicy string

// Sync policies. Whatever the policy, [Log.Close] fsyncs.
const (
	// SyncAlways fsyncs after every batch written: nothing acknowledged by
	// the disk is lost on power failure, at the cost of one fsync per batch.
	SyncAlways SyncPolicy = "always"
	// SyncInterval fsyncs at most every [Options.SyncPeriod] when something
	// was written since the last fsync: a power failure loses at most that
	// much.
	SyncInterval SyncPolicy = "interval"
	// SyncNever leaves flushing to the operating system until Close.
	SyncNever SyncPolicy = "never"
)

// Defaults of [Options].
const (
	DefaultQueueSize  = 4096
	DefaultSyncPeriod = time.Second
)

const (
	// flushEvery bounds how long a written event waits in the batch when
	// the queue never runs empty; an idle writer flushes at once.
	flushEvery = 100 * time.Millisecond
	// maxBatchBytes makes a busy writer write before the next tick.
	maxBatchBytes = 64 << 10
	// retryEvery is how often a failing writer tries its batch again.
	retryEvery = time.Second
	// stallLimit: a write or fsync running longer makes Ping fail.
	stallLimit = 10 * time.Second
	// dropLogEvery rate-limits the warning about dropped events.
	dropLogEvery = 10 * time.Second
)

// ErrClosed is returned by [Log.Ping] after [Log.Close].
var ErrClosed = errors.New("audit: log closed")

// Options configures [Open]. The zero value is ready to use.
type Options struct {
	// Copy, when set, also receives every line, after the line reached the
	// file: the contract's optional stdout copy. It is written from the one
	// writer goroutine, one batch of whole lines per Write, and must not
	// block for long (a blocked Copy stalls the log). Its errors are logged,
	// not reported by Ping: the file is the record. Nil means no copy.
	Copy io.Writer
	// Sync is the fsync policy. Empty means [SyncInterval].
	Sync SyncPolicy
	// SyncPeriod is the period of [SyncInterval]. Zero means
	// [DefaultSyncPeriod] (1 s).
	SyncPeriod time.Duration
	// QueueSize is how many events may wait for the writer. Zero means
	// [DefaultQueueSize].
	QueueSize int
	// QueueWait is how long Record waits for room in a full queue before it
	// drops the event (and less, when its ctx ends first). Zero means it
	// never waits: a full queue drops at once, so an overloaded or failing
	// disk never slows a login or a handshake.
	QueueWait time.Duration
	// Logger receives the Log's own warnings (write errors, drops, a cut
	// torn line). Nil means discard.
	Logger *slog.Logger
	// Now stamps events recorded with a zero TS; Record calls it from the
	// caller's goroutine, so it must be safe for concurrent use. Nil means
	// time.Now.
	Now func() time.Time
}

// Log is an append-only, hash-chained audit log file. It implements
// [tollgate.Auditor]; Record, Ping and Dropped are safe for concurrent use,
// also with Close.
type Log struct {
	path string
	log  *slog.Logger
	now  func() time.Time
	wait time.Duration

	// mu orders sends on queue before Close: Record sends under RLock, Close
	// sets closed under Lock, so after Close no event is left in the queue
	// unseen by the writer.
	mu     sync.RWMutex
	closed atomic.Bool
	queue  chan tollgate.AuditEvent

	stop      chan struct{} // closed by Close
	done      chan struct{} // closed by the writer when it has finished
	closeOnce sync.Once
	closeErr  error // set by the writer before done

	dropped   atomic.Uint64
	busySince atomic.Int64 // unix nanos when the running write or fsync began, 0 when none

	errMu    sync.Mutex
	writeErr error // last write error, nil after a successful write
	syncErr  error // last fsync error, nil after a successful fsync

	w *writer // owned by the writer goroutine
}

var _ tollgate.Auditor = (*Log)(nil)

// Open opens the audit log at path, creating it with mode 0600 when it does
// not exist (its directory must), and starts the writer goroutine; Close
// stops it.
//
// An existing file is continued: Open reads at most [MaxLineBytes] bytes
// from its end to find the last line, and the next line's prev is that
// line's hash. The file is not verified as a whole; run [Verify] for that.
// Open fails when the last line is not an audit record (a file that is not
// an audit log, or a corrupted one), or is longer than MaxLineBytes.
//
// A torn last line, bytes after the last newline, as a crash in the middle
// of a write can leave, is cut off (the file is truncated after the last
// newline) with a warning, and the chain continues from the last complete
// line. That hides nothing: cutting lines from the end of the file is
// undetectable by the chain anyway, and keeping the fragment would make
// every later Verify stop at it. The Log itself never leaves a torn line
// when a write fails part-way: it truncates its partial batch before trying
// again.
func Open(path string, opts Options) (*Log, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("audit: %w", err)
	}
	var size int64
	if fi.Mode().IsRegular() {
		size = fi.Size()
		if fi.Mode().Perm()&0o077 != 0 {
			log.Warn("audit log is readable by others", "path", path, "mode", fi.Mode().Perm().String())
		}
	}
	end, prev, err := resume(f, size)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("audit: %s: %w", path, err)
	}
	if end < size {
		frag := make([]byte, size-end)
		if _, err := f.ReadAt(frag, end); err != nil {
			f.Close()
			return nil, fmt.Errorf("audit: %s: read torn line: %w", path, err)
		}
		if err := f.Truncate(end); err != nil {
			f.Close()
			return nil, fmt.Errorf("audit: %s: cut torn line: %w", path, err)
		}
		// The fragment's hash, not its bytes: it may hold anything.
		log.Warn("audit log ended in a torn line; cut it off", "path", path,
			"offset", end, "bytes", len(frag), "sha256", hashLine(frag)[:16])
	}
	l := newLog(f, path, end, prev, opts, log)
	l.start()
	return l, nil
}

func (o Options) validate() error {
	switch o.Sync {
	case "", SyncAlways, SyncInterval, SyncNever:
	default:
		return fmt.Errorf("audit: unknown sync policy %q (want always, interval or never)", o.Sync)
	}
	switch {
	case o.SyncPeriod < 0:
		return fmt.Errorf("audit: negative sync period %s", o.SyncPeriod)
	case o.QueueSize < 0:
		return fmt.Errorf("audit: negative queue size %d", o.QueueSize)
	case o.QueueWait < 0:
		return fmt.Errorf("audit: negative queue wait %s", o.QueueWait)
	}
	return nil
}

// newLog builds a Log that appends to f, whose size is size and whose last
// line hashes to prev. start runs its writer.
func newLog(f file, path string, size int64, prev string, opts Options, log *slog.Logger) *Log {
	if opts.Sync == "" {
		opts.Sync = SyncInterval
	}
	if opts.SyncPeriod == 0 {
		opts.SyncPeriod = DefaultSyncPeriod
	}
	if opts.QueueSize == 0 {
		opts.QueueSize = DefaultQueueSize
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Log{
		path:  path,
		log:   log,
		now:   opts.Now,
		wait:  opts.QueueWait,
		queue: make(chan tollgate.AuditEvent, opts.QueueSize),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	l.w = newWriter(f, size, prev, opts)
	return l
}

func (l *Log) start() { go l.run() }

// Record queues e for writing and returns without waiting for the disk. It
// fills a zero TS from [Options.Now], stores TS in UTC, and cuts every string
// field to [MaxFieldBytes].
//
// When the queue is full Record waits at most [Options.QueueWait] (zero: not
// at all) and then drops the event, counting it in [Log.Dropped]. ctx only
// cuts that wait short: an event is queued even when ctx has ended, because
// events such as disconnect are recorded as their request or socket ends.
// Events recorded after Close are dropped and counted too.
func (l *Log) Record(ctx context.Context, e tollgate.AuditEvent) {
	e = sanitize(e, l.now)
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed.Load() {
		l.dropped.Add(1)
		return
	}
	select {
	case l.queue <- e:
		return
	default:
	}
	if l.wait > 0 {
		var cancelled <-chan struct{}
		if ctx != nil {
			cancelled = ctx.Done()
		}
		t := time.NewTimer(l.wait)
		defer t.Stop()
		select {
		case l.queue <- e:
			return
		case <-t.C:
		case <-cancelled:
		}
	}
	l.dropped.Add(1)
}

// Dropped is the number of events dropped since Open: because the queue was
// full, because they were recorded after Close, or because Close could not
// write them.
func (l *Log) Dropped() uint64 { return l.dropped.Load() }

// Ping reports whether the log is writing: it returns the last write or
// fsync error until a later write (or fsync) succeeds, an error when a write
// or fsync has been running for more than 10 s, and [ErrClosed] after Close.
// It never waits on the disk, so it fits httpapi's readiness check.
func (l *Log) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if l.closed.Load() {
		return ErrClosed
	}
	if since := l.busySince.Load(); since != 0 {
		if d := time.Since(time.Unix(0, since)); d > stallLimit {
			return fmt.Errorf("audit: %s: write stalled for %s", l.path, d.Round(time.Second))
		}
	}
	l.errMu.Lock()
	defer l.errMu.Unlock()
	return errors.Join(l.writeErr, l.syncErr)
}

// Close stops accepting events, writes every queued one, fsyncs and closes
// the file. When the file still cannot be written it gives up after one
// more attempt, counts the unwritten events in [Log.Dropped] and returns an
// error saying how many. Close waits for the disk (a hung disk hangs it);
// calling it again returns the first call's result.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.closed.Store(true)
		l.mu.Unlock()
		close(l.stop)
		<-l.done
	})
	return l.closeErr
}

// setErr records the outcome of a write (sync false) or fsync (sync true)
// and logs transitions between failing and working.
func (l *Log) setErr(sync bool, err error) {
	l.errMu.Lock()
	slot := &l.writeErr
	what := "write"
	if sync {
		slot, what = &l.syncErr, "fsync"
	}
	was := *slot
	*slot = err
	l.errMu.Unlock()
	switch {
	case err != nil && was == nil:
		l.log.Error("audit log "+what+" failed; retrying", "path", l.path, "error", err)
	case err == nil && was != nil:
		l.log.Info("audit log "+what+" works again", "path", l.path)
	}
}
