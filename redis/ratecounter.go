package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// rateSlack is added to a window's Redis TTL beyond the end of the window
// after it (while it is still read as "previous"), to absorb clock skew.
const rateSlack = time.Second

// incrScript adds ARGV[1] to the count KEYS[1] (the current window) and
// returns it with the count KEYS[2] (the window before). It refreshes the
// current window's TTL to ARGV[2] ms. A zero or negative n never creates a
// window that does not exist: reading or taking back nothing stores nothing.
var incrScript = goredis.NewScript(`
local n = tonumber(ARGV[1])
local cur
if n > 0 or redis.call('EXISTS', KEYS[1]) == 1 then
	cur = redis.call('INCRBY', KEYS[1], n)
	redis.call('PEXPIRE', KEYS[1], ARGV[2])
else
	cur = 0
end
local prev = tonumber(redis.call('GET', KEYS[2]) or '0')
return {cur, prev}
`)

// rateKey names the count of window idx of length w for key. w and idx come
// first (digits only), so no two (key, w, idx) share a name; the key is a
// hash tag, so that a window and the one before it live in one slot.
func (c *Client) rateKey(key string, w time.Duration, idx int64) string {
	return c.prefix + "rate:" + strconv.FormatInt(int64(w), 10) + ":" + strconv.FormatInt(idx, 10) + ":{" + key + "}"
}

// Incr adds n to key's count in the window of length w that contains now
// (windows start at multiples of w since the Unix epoch) and returns the new
// count of that window and the count of the window before, in one Lua script
// (INCRBY, PEXPIRE, GET): atomic, so concurrent callers on any number of
// nodes each see a distinct count. n may be 0 (read the counts) or negative
// (take back a refused attempt); neither creates a window that is not there.
// A window's key expires a window after its end (measured from now), so
// Redis keeps the current and the previous window only. w must be positive.
// Safe for concurrent use.
func (c *Client) Incr(ctx context.Context, key string, n int64, w time.Duration, now time.Time) (current, previous int64, err error) {
	const op = "rate count"
	if w <= 0 {
		return 0, 0, fmt.Errorf("redis: %s: window %v is not positive", op, w)
	}
	ctx, cancel := bound(ctx)
	defer cancel()
	ns := now.UnixNano()
	idx := ns / int64(w)
	if ns%int64(w) < 0 { // floor, for times before 1970
		idx--
	}
	end := (idx + 1) * int64(w)                                       // end of this window, in ns since the epoch
	ttl := time.Duration(end-ns) + w + rateSlack                      // keep it through the next window
	ttlMS := max(int64((ttl+time.Millisecond-1)/time.Millisecond), 1) // PEXPIRE wants whole ms
	res, err := incrScript.Run(ctx, c.rdb, []string{c.rateKey(key, w, idx), c.rateKey(key, w, idx-1)}, n, ttlMS).Int64Slice()
	if err != nil {
		return 0, 0, c.fail(op, err)
	}
	if len(res) != 2 {
		return 0, 0, fmt.Errorf("redis: %s: %w", op, errors.New("unexpected script reply"))
	}
	return res[0], res[1], nil
}
