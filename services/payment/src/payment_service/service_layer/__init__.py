"""Use cases: the event handlers (each on the worker's unit of work, inside its transaction), the
executor's gateway calls, and the API's reads."""
