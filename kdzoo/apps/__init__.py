"""Applications built on the library: they compose datasets, models, run folders and the engine
(transfer evaluation here; the benchmark runner lives beside them in kdzoo/bench)."""
