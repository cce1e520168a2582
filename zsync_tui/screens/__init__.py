"""One screen per step of a manual synchronization, each with its stylesheet beside it."""
