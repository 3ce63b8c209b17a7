"""The demo corpus: a head of our own, a face rig, synthetic speech with phone timings, ground-truth motion."""
