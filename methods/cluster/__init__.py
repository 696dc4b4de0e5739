"""What the workflow needs from the machine or the scheduler: one GPU per job (`gpu_slots`, run
by path, standard library only), whether a recorded process still lives (`liveness`), one
training process per run folder (`runlock`), Snakemake's stale lock (`snakemake_lock`) and the
SLURM start-up check (`slurm_preflight`). None of them imports torch."""
