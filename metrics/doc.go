// Package metrics is tollgate's Prometheus instrumentation (issue 10): one
// private registry per node (never the global default one), the series the
// operations contract promises, and the handler that serves them at
// GET /metrics.
//
// The instrumented packages (ws, hub, httpapi, auth, limit) do not import
// Prometheus: each defines a small Metrics hook interface in its Config, and
// [*Metrics] implements all of them. A nil hook counts nothing.
//
// Labels come only from fixed sets — protocol names, credential kinds,
// contract error codes, close reasons, control-event kinds, rate-limit kinds,
// block kinds and reasons — and every value is checked against its set here,
// so a user id, a name, an IP address or a secret can never become a label
// even if a caller passed one by mistake. Values outside a set are counted
// under "other".
package metrics
