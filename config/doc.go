// Package config turns the command line, the environment and an optional
// YAML file into one validated [Config] for `tollgate serve`.
//
// Every setting is a flag (--data-dir), an environment variable
// (TOLLGATE_DATA_DIR) and a key of the YAML file named by --config or
// TOLLGATE_CONFIG (data-dir: /var/lib/tollgate). For each setting a flag wins
// over the environment, the environment over the file, and the file over the
// default (docs/api.md, "Names"). [Load] resolves derived values once (the
// default origin allowlist, secure cookies, the --server address), so the
// rest of the program reads plain fields and never a flag or a variable.
//
// Nothing is silently defaulted: an unknown file key, a malformed value or a
// value outside its bounds is an error that names where the value came from
// and what is wrong with it, as in
//
//	--ticket-ttl: 2s is below the minimum 5s
//	TOLLGATE_ADDR: "localhost" is not host:port
//	tollgate.yaml:3: registraton: unknown setting
//
// The package owns parsing, defaults, bounds and the `serve --help` text
// ([Usage]). It does not read the files settings point at (the JWT key, the
// admin token), open stores or listeners, or parse sub-commands: callers pass
// the arguments after `serve`, and map [Config] onto the plain Config structs
// of the packages they wire (auth, hub, httpapi, ...).
//
// Store URLs may hold passwords; they are [SecretURL]s, which print, log and
// marshal with the password replaced, so a whole [Config] is safe to log.
package config
