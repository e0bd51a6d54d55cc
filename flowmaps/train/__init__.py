"""Training: the loop (:mod:`.trainer`), schedules, EMAs and their snapshots, checkpoints,
data parallelism and the builders that turn a config into data and a flow map."""
