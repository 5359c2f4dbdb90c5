package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/tollgate-ws/tollgate"
	"github.com/tollgate-ws/tollgate/config"
	"github.com/tollgate-ws/tollgate/httpapi"
	"github.com/tollgate-ws/tollgate/limit"
	"github.com/tollgate-ws/tollgate/memory"
	"github.com/tollgate-ws/tollgate/postgres"
	"github.com/tollgate-ws/tollgate/redis"
	"github.com/tollgate-ws/tollgate/sqlite"
)

// Purge periods of the stores that need one.
const (
	accountPurgeEvery = time.Hour
	memoryPurgeEvery  = time.Minute
	// reseedEvery is how soon blocks are back in a restarted Redis.
	reseedEvery = 30 * time.Second
)

// stores are the adapters a node runs on. The default is one node with no
// dependencies: SQLite in --data-dir for accounts and history, in-process
// tickets, broker, rate counters and blocks. --postgres-url replaces
// SQLite; --redis-url replaces the in-process parts, which is what lets
// several nodes share tickets, fan-out, limits and blocks.
type stores struct {
	users    tollgate.UserStore
	sessions tollgate.SessionStore
	messages tollgate.MessageStore
	tickets  tollgate.TicketStore
	broker   tollgate.Broker
	counter  tollgate.RateCounter
	blocks   tollgate.Blocklist

	// ready are the /readyz checks, one per external store.
	ready []httpapi.Check
	// tasks run in the background while the node serves (purges).
	tasks []func(context.Context)
	// closers release the stores, last opened first closed.
	closers []func() error
}

// accountStore is what both SQL adapters offer.
type accountStore interface {
	tollgate.UserStore
	tollgate.SessionStore
	tollgate.MessageStore
	Ping(ctx context.Context) error
	PurgeExpired(ctx context.Context, now time.Time) (int64, error)
	Close() error
}

// openStores opens the adapters cfg selects. On error it closes what it
// opened. Store URLs never appear in errors with their passwords.
func openStores(ctx context.Context, cfg config.Config, log *slog.Logger) (_ *stores, err error) {
	st := &stores{}
	defer func() {
		if err != nil {
			st.close(log)
		}
	}()

	var db accountStore
	name := "sqlite"
	if cfg.PostgresURL.Empty() {
		sdb, err := sqlite.Open(ctx, filepath.Join(cfg.DataDir, DatabaseFile))
		if err != nil {
			return nil, fmt.Errorf("--data-dir %s: %w", cfg.DataDir, err)
		}
		db = sdb
	} else {
		pdb, err := postgres.Open(ctx, cfg.PostgresURL.Reveal())
		if err != nil {
			return nil, fmt.Errorf("--postgres-url %s: %w", cfg.PostgresURL.Redacted(), err)
		}
		db, name = pdb, "postgres"
	}
	st.closers = append(st.closers, db.Close)
	st.users, st.sessions, st.messages = db, db, db
	st.ready = append(st.ready, httpapi.Check{Name: name, Pinger: db})
	st.tasks = append(st.tasks, func(ctx context.Context) {
		every(ctx, accountPurgeEvery, func(ctx context.Context) {
			if n, err := db.PurgeExpired(ctx, time.Now()); err != nil {
				log.Warn("purging expired sessions failed", "store", name, "error", err)
			} else if n > 0 {
				log.Debug("purged expired sessions and refresh tokens", "rows", n)
			}
		})
	})

	if cfg.RedisURL.Empty() {
		tickets, counter, blocks := memory.NewTicketStore(), memory.NewRateCounter(), memory.NewBlocklist()
		st.tickets, st.counter, st.blocks, st.broker = tickets, counter, blocks, memory.NewBroker()
		st.tasks = append(st.tasks,
			func(ctx context.Context) { tickets.Run(ctx, 0) },
			func(ctx context.Context) { counter.Run(ctx, memoryPurgeEvery) },
			func(ctx context.Context) {
				every(ctx, memoryPurgeEvery, func(context.Context) { blocks.Purge(time.Now()) })
			})
		return st, nil
	}
	rc, err := redis.Open(ctx, cfg.RedisURL.Reveal(), redis.Options{Prefix: cfg.RedisPrefix, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("--redis-url %s: %w", cfg.RedisURL.Redacted(), err)
	}
	st.closers = append(st.closers, rc.Close)
	st.tickets, st.counter, st.blocks, st.broker = rc, rc, rc, rc
	st.ready = append(st.ready, httpapi.Check{Name: "redis", Pinger: rc})
	if durable, ok := db.(tollgate.Blocklist); ok {
		// Blocks are read from Redis and written through to PostgreSQL,
		// which puts them back after a Redis restart (Redis may keep
		// nothing on disk).
		blocks := limit.DurableBlocks{Fast: rc, Durable: durable}
		st.blocks = blocks
		st.tasks = append(st.tasks, func(ctx context.Context) {
			every(ctx, reseedEvery, func(ctx context.Context) {
				if _, err := blocks.Reseed(ctx, time.Now()); err != nil {
					log.Warn("copying blocks from the database to Redis failed", "error", err)
				}
			})
		})
	}
	return st, nil
}

// every runs f now and then every period until ctx ends; each run is bounded
// by a minute.
func every(ctx context.Context, period time.Duration, f func(context.Context)) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		fctx, cancel := context.WithTimeout(ctx, time.Minute)
		f(fctx)
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// close releases every store, last opened first.
func (st *stores) close(log *slog.Logger) {
	for i := len(st.closers) - 1; i >= 0; i-- {
		if err := st.closers[i](); err != nil {
			log.Error("closing a store", "error", err)
		}
	}
	st.closers = nil
}
