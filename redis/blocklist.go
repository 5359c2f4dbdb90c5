package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tollgate-ws/tollgate"
)

// blockSlack is added to a block's remaining life to get its Redis TTL, to
// absorb clock skew; whether a block is in force is always decided from its
// Until.
const blockSlack = time.Second

// maxListBatch bounds the keys fetched by one MGET in List.
const maxListBatch = 500

// blockScript stores or removes one block and keeps the index in step, then
// drops index entries that ended before ARGV[5] (ms).
// KEYS: entry, index. ARGV: value, ttl ms (<= 0: remove), until ms, member, prune-before ms.
var blockScript = goredis.NewScript(`
if tonumber(ARGV[2]) > 0 then
	redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
	redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
else
	redis.call('DEL', KEYS[1])
	redis.call('ZREM', KEYS[2], ARGV[4])
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[5])
return 1
`)

// unblockScript removes a block and its index entry and returns what was
// stored (nil if nothing). KEYS: entry, index. ARGV: member.
var unblockScript = goredis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v then
	redis.call('DEL', KEYS[1])
end
redis.call('ZREM', KEYS[2], ARGV[1])
return v
`)

// blockMember identifies a block in the index.
func blockMember(kind tollgate.BlockKind, target string) string { return string(kind) + ":" + target }

// blockKey names a block's entry. "{block}" is a hash tag: every block and
// the index live in one slot.
func (c *Client) blockKey(member string) string { return c.prefix + "{block}:" + member }

func (c *Client) blockIndex() string { return c.prefix + "{block}:index" }

// Block adds or replaces the block of (b.Kind, b.Target): one Lua script
// sets its entry with a TTL that ends at b.Until (by the client's clock,
// plus a second of slack) and its score in the index sorted set. A block
// already over when added removes any block of (b.Kind, b.Target) instead,
// as a replacement that is not in force would. Safe for concurrent use.
func (c *Client) Block(ctx context.Context, b tollgate.Block) error {
	const op = "block"
	ctx, cancel := bound(ctx)
	defer cancel()
	v, err := json.Marshal(b)
	if err != nil {
		return fmt.Errorf("redis: %s: %w", op, err)
	}
	now := c.now()
	var ttlMS int64
	if left := b.Until.Sub(now); left > 0 {
		ttlMS = (left + blockSlack).Milliseconds()
	}
	// The score rounds Until up to a whole millisecond, so that List's
	// "score > now" never leaves out a block still in force.
	untilMS := b.Until.UnixMilli()
	if b.Until.After(time.UnixMilli(untilMS)) {
		untilMS++
	}
	member := blockMember(b.Kind, b.Target)
	err = blockScript.Run(ctx, c.rdb, []string{c.blockKey(member), c.blockIndex()},
		v, ttlMS, untilMS, member, now.Add(-blockSlack).UnixMilli()).Err()
	return c.fail(op, err)
}

// Unblock removes the block of (kind, target) and its index entry in one Lua
// script, and reports whether a block was in force (by the client's clock).
// Of concurrent unblocks of one block exactly one reports it. Safe for
// concurrent use.
func (c *Client) Unblock(ctx context.Context, kind tollgate.BlockKind, target string) (bool, error) {
	const op = "unblock"
	ctx, cancel := bound(ctx)
	defer cancel()
	member := blockMember(kind, target)
	v, err := unblockScript.Run(ctx, c.rdb, []string{c.blockKey(member), c.blockIndex()}, member).Text()
	if errors.Is(err, goredis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, c.fail(op, err)
	}
	var b tollgate.Block
	if err := json.Unmarshal([]byte(v), &b); err != nil {
		return false, fmt.Errorf("redis: %s: malformed record: %w", op, err)
	}
	return b.Active(c.now()), nil
}

// Blocked returns the block of (kind, target) if it is in force at now,
// with one GET. Safe for concurrent use.
func (c *Client) Blocked(ctx context.Context, kind tollgate.BlockKind, target string, now time.Time) (tollgate.Block, bool, error) {
	const op = "blocked"
	ctx, cancel := bound(ctx)
	defer cancel()
	v, err := c.rdb.Get(ctx, c.blockKey(blockMember(kind, target))).Bytes()
	if errors.Is(err, goredis.Nil) {
		return tollgate.Block{}, false, nil
	}
	if err != nil {
		return tollgate.Block{}, false, c.fail(op, err)
	}
	var b tollgate.Block
	if err := json.Unmarshal(v, &b); err != nil {
		return tollgate.Block{}, false, fmt.Errorf("redis: %s: malformed record: %w", op, err)
	}
	if !b.Active(now) {
		return tollgate.Block{}, false, nil
	}
	return b, true, nil
}

// List returns the blocks in force at now, in no particular order: the index
// members whose end is after now, read with MGET in batches of 500. It is
// meant for the admin API, not for a hot path. Safe for concurrent use.
func (c *Client) List(ctx context.Context, now time.Time) ([]tollgate.Block, error) {
	const op = "list blocks"
	ctx, cancel := bound(ctx)
	defer cancel()
	members, err := c.rdb.ZRangeByScore(ctx, c.blockIndex(), &goredis.ZRangeBy{
		Min: "(" + strconv.FormatInt(now.UnixMilli(), 10), Max: "+inf",
	}).Result()
	if err != nil {
		return nil, c.fail(op, err)
	}
	out := make([]tollgate.Block, 0, len(members))
	for len(members) > 0 {
		batch := members[:min(len(members), maxListBatch)]
		members = members[len(batch):]
		keys := make([]string, len(batch))
		for i, m := range batch {
			keys[i] = c.blockKey(m)
		}
		vals, err := c.rdb.MGet(ctx, keys...).Result()
		if err != nil {
			return nil, c.fail(op, err)
		}
		for _, v := range vals {
			s, ok := v.(string)
			if !ok { // removed or expired since the index was read
				continue
			}
			var b tollgate.Block
			if err := json.Unmarshal([]byte(s), &b); err != nil {
				return nil, fmt.Errorf("redis: %s: malformed record: %w", op, err)
			}
			if b.Active(now) {
				out = append(out, b)
			}
		}
	}
	return out, nil
}
