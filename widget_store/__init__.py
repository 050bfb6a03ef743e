"""Widget Store: an online store that sells a widget and survives any crash.

The package's rooms, each importing only the rooms below it (tests/test_layout.py):

- `server/`: the command line, the supervisor and its serving processes, migrations.
- `web/`: the app factory and what it wires: routes by audience, middleware, the lifespan.
- `demo/`: the built-in shoppers.
- `durable/`: what makes the store survive: a serving process's life on DBOS, liveness and
  takeover, the reconciler, drain mode, and the few DBOS internals it touches.
- `shop/`: the seed's flow: tables, data access, the checkout and dispatch workflows, payments.
- `database/`: reaching the database, and riding out its loss.
- `config` and `paths` at the top: the settings and where the page and the migrations are.

`testing/` runs a real store, a balancer and Postgres clusters from the outside, for the tests
and the benchmarks.
"""
