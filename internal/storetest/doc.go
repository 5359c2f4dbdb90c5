// Package storetest holds one conformance suite per root store and broker
// interface: [Users], [Sessions], [Messages], [Tickets] and [Broker]. Every
// implementation (memory and sqlite today; postgres and redis tomorrow)
// calls each suite that applies to it from its own tests, in the spirit of
// centrifuge's map_broker_shared_test.go, so that they all keep the
// semantics documented on the interfaces in the root package — atomic
// redeems, gap-free ids, idempotent publishes, refresh-token reuse — and not
// each its own reading of them.
//
// A suite runs its cases as parallel subtests and calls the factory once per
// subtest, so every case starts from an empty store; the factory must be safe
// for concurrent calls and should register its cleanup with t.Cleanup. Times
// in the suites have millisecond precision, the coarsest a store may keep.
//
// What is particular to one implementation (a janitor, a size bound, a
// restart) is tested beside it, not here.
package storetest
