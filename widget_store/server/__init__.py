"""Running the store: the `widget-store` command, the supervisor and the serving process it
restarts, migrations, logging, the HTTP protocol's limits and the garbage-collector settings.
It builds on the web layer and the core; neither imports from here."""
