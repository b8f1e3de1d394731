"""The analysis engine: frozen requests -> typed results, one scorer, a result store and a job runner."""
