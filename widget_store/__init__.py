"""Widget Store: an online store that sells a widget and survives any crash.

The core sits at the top of the package: settings (`config`), tables (`tables`), the database
handle (`db`), every SQL statement (`store`), the durable workflows (`workflows`, `shoppers`)
and what they need from the running process (`runtime`), what the routes ask of a checkout
(`checkout`) and of the figures (`stats`), payment signatures (`payments`), domain errors
(`errors`), DBOS's configuration (`dbos_config`) and where the page and the migrations are
(`paths`). `web/` is the HTTP layer over the core and `server/` runs it all: the core imports
from neither, and web never from server. `testing` runs a real store in a subprocess, for the
tests and the benchmarks.
"""
