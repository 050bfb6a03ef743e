"""Benchmarks of the store, each a script run from the repository's top as
`python -m bench.<script>` (load, engine, compare, plot, capacity, recovery, chaos); every one
prints its tables and says what it measures in its docstring.

What they share: the load they make (`loadgen`), what it costs (`resources`), fresh databases
and store servers (`servers`), dispatch tick lateness (`lateness`), statistics (`stats`), the
command lines (`cli`) and the tables and JSON they write (`report`). The chaos run's audit is
`chaos_audit`.
"""
