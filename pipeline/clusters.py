"""The batch schedulers `generate --cluster` can submit to: names only, no Dask import (fast `--help`)."""

# --cluster value -> (dask-jobqueue class, job submission command, job cancellation command).
SCHEDULERS = {
    "slurm": ("SLURMCluster", "sbatch", "scancel"),
    "pbs": ("PBSCluster", "qsub", "qdel"),
    "sge": ("SGECluster", "qsub", "qdel"),
    "lsf": ("LSFCluster", "bsub", "bkill"),
}
DEFAULT_JOBS = 1
