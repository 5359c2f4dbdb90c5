// Command tollgate is the tollgate server and its tools:
//
//	tollgate serve [flags]              run the server (embedded defaults: SQLite, in-process)
//	tollgate user add NAME [--admin]    create a user; password on stdin
//	tollgate user disable NAME          disable a user on a running server
//	tollgate block list|add|remove      manage blocks on a running server
//	tollgate audit verify [FILE]        check the audit log's hash chain
//	tollgate keys rotate                add a new JWT signing key
//	tollgate bench MODE [flags]         load generator (connect, idle, fanout, baseline)
//	tollgate version                    print the version
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/tollgate-ws/tollgate/redis"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	redis.SilenceLibraryLogs()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// env is the process environment as a lookup function.
type env func(string) string

// run executes one command and returns the process exit code. It is the
// whole program, so tests run it in-process.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv env) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(ctx, args[1:], stdout, stderr, getenv, nil)
	case "user":
		if len(args) > 1 && args[1] == "disable" {
			err = userDisable(ctx, args[2:], stdout, getenv)
		} else {
			err = userCmd(ctx, args[1:], stdin, stdout, stderr, getenv)
		}
	case "block":
		err = blockCmd(ctx, args[1:], stdout, getenv)
	case "audit":
		err = auditCmd(args[1:], stdout, getenv)
	case "keys":
		err = keysCmd(args[1:], stdout, stderr, getenv)
	case "bench":
		err = benchCmd(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "tollgate", version)
		return 0
	case "help", "--help", "-h":
		usage(stdout)
		return 0
	default:
		fmt.Fprintf(stderr, "tollgate: unknown command %q\n", args[0])
		usage(stderr)
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "tollgate:", err)
		return 1
	}
	return 0
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: tollgate COMMAND [flags]

  serve                          run the server (try: tollgate serve --help)
  user add NAME [--admin]        create a user (password on stdin)
  user disable NAME              disable a user on a running server
  block list                     list blocks on a running server
  block add user:NAME|ip:ADDR [--for 1h] [--reason TEXT]
  block remove user:NAME|ip:ADDR
  audit verify [FILE]            verify the audit log's hash chain
  keys rotate                    add a new JWT signing key (SIGHUP the servers after)
  bench connect|idle|fanout|revoke|tickets|soak|baseline [flags]   load generator
  version                        print the version
`)
}
